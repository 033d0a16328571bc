//! The export pipeline: the OTLP exporter for the settings' protocol, the SDK's batch
//! processor (a thread of its own, spans sent every few seconds and at shutdown), the
//! sampler and the resource, and the `tracing` layer that turns spans into
//! OpenTelemetry spans.

use std::time::Duration;

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response, hyper::HyperClient};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler as SdkSampler, SdkTracerProvider},
};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::{ParentlessSampler, Protocol, Sampler, TracingSettings};

/// How long one export may take before the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("tracing must start inside the service's tokio runtime")]
    NoRuntime,
    #[error("OTEL_EXPORTER_OTLP_HEADERS: {0:?} is not a valid gRPC metadata name or value")]
    Header(String),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The provider (kept to flush at shutdown) and the layer for the subscriber.
pub(crate) fn start<S>(
    settings: &TracingSettings,
) -> Result<
    (
        SdkTracerProvider,
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    ),
    StartError,
>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
    let exporter = exporter(settings, runtime)?;
    let resource = Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attributes(
            settings
                .resource
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(settings.sampler))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("order-platform");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // The span names and attributes are the semantic conventions' (`spans`), not
        // `tracing`'s code locations.
        .with_location(false)
        .with_target(false)
        .with_threads(false);
    Ok((provider, layer))
}

fn exporter(
    settings: &TracingSettings,
    runtime: tokio::runtime::Handle,
) -> Result<SpanExporter, StartError> {
    Ok(match settings.protocol {
        Protocol::Grpc => {
            let mut metadata = MetadataMap::new();
            for (name, value) in &settings.headers {
                let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| StartError::Header(name.clone()))?;
                let value = MetadataValue::try_from(value.as_str())
                    .map_err(|_| StartError::Header(value.clone()))?;
                metadata.insert(key, value);
            }
            let mut builder = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .with_metadata(metadata);
            if settings.endpoint.starts_with("https://") {
                builder = builder
                    .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
            }
            builder.build()?
        }
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(settings.headers.clone().into_iter().collect())
            .with_http_client(OnRuntime {
                runtime,
                client: HyperClient::with_default_connector(EXPORT_TIMEOUT, None),
            })
            .build()?,
    })
}

fn sampler(sampler: Sampler) -> SdkSampler {
    let parentless = |inner: ParentlessSampler| match inner {
        ParentlessSampler::AlwaysOn => SdkSampler::AlwaysOn,
        ParentlessSampler::AlwaysOff => SdkSampler::AlwaysOff,
        ParentlessSampler::TraceIdRatio(ratio) => SdkSampler::TraceIdRatioBased(ratio),
    };
    match sampler {
        Sampler::AlwaysOn => SdkSampler::AlwaysOn,
        Sampler::AlwaysOff => SdkSampler::AlwaysOff,
        Sampler::TraceIdRatio(ratio) => SdkSampler::TraceIdRatioBased(ratio),
        Sampler::ParentBased(inner) => SdkSampler::ParentBased(Box::new(parentless(inner))),
    }
}

/// The hyper client run on the service's runtime: the SDK's batch processor exports
/// from a thread of its own, where hyper (which needs tokio) cannot run.
#[derive(Debug)]
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    client: HyperClient,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}
