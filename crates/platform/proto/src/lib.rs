//! The `orders.v1` gRPC contract shared by the orders service and its clients.
//!
//! `build.rs` compiles `proto/orders/v1/orders.proto` with protox (no system
//! `protoc`), so this crate holds:
//! - [`v1`]: messages, `OrdersServiceClient` and `OrdersServiceServer` of `orders.v1`;
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors that server reflection
//!   serves, so `grpcurl` works without the .proto file.

/// Generated code for `package orders.v1` (not named `orders`, which is the service
/// crate's name).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("orders.v1");
}

/// Encoded `google.protobuf.FileDescriptorSet` for `orders.v1` and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/orders_descriptor.bin"));

pub use prost_types::Timestamp;
