//! An OTLP trace receiver for tests: a real OTLP server speaking the OpenTelemetry
//! protobuf definitions (`opentelemetry-proto`), over gRPC ([`OtlpReceiver::start_grpc`])
//! or HTTP/protobuf ([`OtlpReceiver::start_http`]), so a test checks the spans a service
//! binary exports as an actual backend such as Jaeger or a collector would get them,
//! not what a mock of the exporter was told.
//!
//! The server runs on its own thread and Tokio runtime, since the tests using it are
//! synchronous; it is listening before `start_*` returns and stops on drop.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use hyper::body::{Body, Bytes, Frame, Incoming};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{span::SpanKind, status::StatusCode},
};
use prost::Message as _;
use tokio::sync::watch;

use crate::free_port;

/// How long a stopping server waits for open connections before it is torn down, so a
/// client holding a connection open cannot hang the test's drop.
const DRAIN: Duration = Duration::from_secs(2);

/// A span as an OTLP receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource attribute `service.name` ("" if none).
    pub service: String,
    /// All resource attributes, values rendered as text.
    pub resource: BTreeMap<String, String>,
    pub name: String,
    /// "internal", "server", "client", "producer", "consumer" or "unspecified".
    pub kind: &'static str,
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// 16 lowercase hex characters.
    pub span_id: String,
    /// `None` for a root span (empty parent id).
    pub parent_span_id: Option<String>,
    /// Values rendered as text: strings as they are, numbers and booleans with `to_string`.
    pub attributes: BTreeMap<String, String>,
    /// The status code is ERROR.
    pub status_error: bool,
}

/// What the server threads record and the test reads.
#[derive(Default)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: AtomicUsize,
}

impl Store {
    fn record(&self, request: ExportTraceServiceRequest) {
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let resource: BTreeMap<String, String> = resource_spans
                .resource
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    resource: resource.clone(),
                    kind: kind_name(span.kind),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    attributes: attributes(&span.attributes),
                    status_error: span
                        .status
                        .is_some_and(|status| status.code == StatusCode::Error as i32),
                    name: span.name,
                });
            }
        }
        // Spans first, then the count: a test that saw `requests()` go up sees its spans.
        self.spans.lock().unwrap().extend(received);
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Unspecified) | Err(_) => "unspecified",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), render(pair.value.as_ref())))
        .collect()
}

fn render(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::BytesValue(bytes)) => hex(bytes),
        // An index into a profiles string table; traces have none to resolve it with.
        Some(Value::StringValueStrindex(index)) => format!("strindex {index}"),
        Some(Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(|v| render(Some(v))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|pair| format!("{}: {}", pair.key, render(pair.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// An OTLP trace receiver on `127.0.0.1:<free port>`, stopped on drop.
pub struct OtlpReceiver {
    addr: SocketAddr,
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// OTLP/gRPC: serves `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
    pub fn start_grpc() -> Self {
        Self::start(|listener, store, stop| async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::from_arc(store))
                .serve_with_incoming_shutdown(incoming, stopped(stop))
                .await;
        })
    }

    /// OTLP/HTTP with protobuf bodies: `POST /v1/traces` with an
    /// `ExportTraceServiceRequest` is answered 200 with an encoded
    /// `ExportTraceServiceResponse` (`content-type: application/x-protobuf`); another
    /// path or method gets 404, another content type or encoding 415, a body that does
    /// not decode 400.
    pub fn start_http() -> Self {
        Self::start(|listener, store, stop| async move {
            let graceful = hyper_util::server::graceful::GracefulShutdown::new();
            let mut accept_stop = stop.clone();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = accept_stop.changed() => break,
                };
                let store = store.clone();
                let service = hyper::service::service_fn(move |request| {
                    let store = store.clone();
                    async move { Ok::<_, Infallible>(export_http(&store, request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            graceful.shutdown().await;
        })
    }

    /// Binds the port here, so the server is listening when `start_*` returns, then
    /// serves on a thread of its own until the receiver is dropped.
    fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, Arc<Store>, watch::Receiver<bool>) -> Fut
            + Send
            + 'static,
        Fut: Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Arc::new(Store::default());
        let (stop, stop_rx) = watch::channel(false);
        let thread_store = store.clone();
        let thread = thread::Builder::new()
            .name(format!("otlp-receiver-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let drain = stopped(stop_rx.clone());
                    tokio::select! {
                        () = serve(listener, thread_store, stop_rx) => {}
                        () = async { drain.await; tokio::time::sleep(DRAIN).await } => {}
                    }
                });
            })
            .unwrap();
        Self {
            addr,
            store,
            stop,
            thread: Some(thread),
        }
    }

    /// What a service's `OTEL_EXPORTER_OTLP_ENDPOINT` is set to: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.lock().unwrap().clone()
    }

    /// How many export requests arrived (0 proves nothing was exported).
    pub fn requests(&self) -> usize {
        self.store.requests.load(Ordering::SeqCst)
    }

    /// Polls every 50 ms until `done(&spans)` is true, then returns the spans; panics
    /// after `deadline` listing the (service, name, trace id) of what did arrive.
    pub fn wait_until(
        &self,
        deadline: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let end = Instant::now() + deadline;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if Instant::now() >= end {
                let seen: Vec<String> = spans
                    .iter()
                    .map(|s| format!("({}, {}, {})", s.service, s.name, s.trace_id))
                    .collect();
                panic!(
                    "the OTLP receiver at {} did not get the expected spans within {deadline:?} \
                     ({} export requests); it got {} spans: [{}]",
                    self.endpoint(),
                    self.requests(),
                    spans.len(),
                    seen.join(", ")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Resolves once the receiver is dropped.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[tonic::async_trait]
impl TraceService for Store {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn export_http(store: &Store, request: hyper::Request<Incoming>) -> hyper::Response<Full> {
    let reply = |status: u16, content_type: &str, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full(Some(Bytes::from(body))))
            .unwrap()
    };
    if request.method() != hyper::Method::POST || request.uri().path() != "/v1/traces" {
        return reply(404, "text/plain", b"not found\n".to_vec());
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    // Only uncompressed protobuf: OTLP/JSON and gzip are not what the services send.
    let encoding = header("content-encoding");
    if header("content-type") != "application/x-protobuf"
        || !(encoding.is_empty() || encoding == "identity")
    {
        return reply(415, "text/plain", b"only application/x-protobuf\n".to_vec());
    }
    let mut body = request.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            Err(error) => return reply(400, "text/plain", format!("{error}\n").into_bytes()),
        }
    }
    match ExportTraceServiceRequest::decode(bytes.as_slice()) {
        Ok(export) => {
            store.record(export);
            let response = ExportTraceServiceResponse {
                partial_success: None,
            };
            reply(200, "application/x-protobuf", response.encode_to_vec())
        }
        Err(error) => reply(400, "text/plain", format!("{error}\n").into_bytes()),
    }
}

/// A whole response body in one frame (what http-body-util's `Full` does, without the
/// extra dependency).
struct Full(Option<Bytes>);

impl Body for Full {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |data| data.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use opentelemetry_proto::tonic::{
        collector::trace::v1::trace_service_client::TraceServiceClient,
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, Status},
    };

    use super::*;

    const TRACE: [u8; 16] = [
        0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31,
        0x9c,
    ];
    const PARENT: [u8; 8] = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
    const CHILD: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    fn text(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// A resource with service.name "svc" and two spans, the second a child of the first.
    fn export_request() -> ExportTraceServiceRequest {
        let parent = Span {
            trace_id: TRACE.to_vec(),
            span_id: PARENT.to_vec(),
            name: "POST /orders".to_owned(),
            kind: SpanKind::Server as i32,
            attributes: vec![
                text("http.request.method", Value::StringValue("POST".to_owned())),
                text("http.response.status_code", Value::IntValue(201)),
            ],
            ..Default::default()
        };
        let child = Span {
            trace_id: TRACE.to_vec(),
            span_id: CHILD.to_vec(),
            parent_span_id: PARENT.to_vec(),
            name: "publish orders".to_owned(),
            kind: SpanKind::Producer as i32,
            attributes: vec![
                text("messaging.system", Value::StringValue("kafka".to_owned())),
                text("retry", Value::BoolValue(true)),
                text("ratio", Value::DoubleValue(0.5)),
            ],
            status: Some(Status {
                code: StatusCode::Error as i32,
                message: "broker down".to_owned(),
            }),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", Value::StringValue("svc".to_owned())),
                        text("service.instance.id", Value::IntValue(7)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![parent, child],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn assert_received(spans: &[ReceivedSpan]) {
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (parent, child) = (&spans[0], &spans[1]);
        for span in spans {
            assert_eq!(span.service, "svc");
            assert_eq!(span.resource["service.instance.id"], "7");
            assert_eq!(span.trace_id, "0af7651916cd43dd8448eb211c80319c");
        }
        assert_eq!(parent.name, "POST /orders");
        assert_eq!(parent.kind, "server");
        assert_eq!(parent.span_id, "b7ad6b7169203331");
        assert_eq!(parent.parent_span_id, None);
        assert_eq!(parent.attributes["http.request.method"], "POST");
        assert_eq!(parent.attributes["http.response.status_code"], "201");
        assert!(!parent.status_error);
        assert_eq!(child.name, "publish orders");
        assert_eq!(child.kind, "producer");
        assert_eq!(child.span_id, "00f067aa0ba902b7");
        assert_eq!(child.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(child.attributes["messaging.system"], "kafka");
        assert_eq!(child.attributes["retry"], "true");
        assert_eq!(child.attributes["ratio"], "0.5");
        assert!(child.status_error);
    }

    #[test]
    fn grpc_receives_spans_from_a_tonic_client() {
        let receiver = OtlpReceiver::start_grpc();
        assert_eq!(receiver.requests(), 0);
        let endpoint = receiver.endpoint();
        crate::runtime().block_on(async move {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            client.export(export_request()).await.unwrap();
        });
        assert_eq!(receiver.requests(), 1);
        let spans = receiver.wait_until(Duration::from_secs(5), |spans| spans.len() == 2);
        assert_received(&spans);
    }

    /// Sends one HTTP/1.1 request on a fresh connection; returns the status, the head
    /// and the body.
    fn post(
        addr: SocketAddr,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(answer[..split].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (
            status,
            head.to_ascii_lowercase(),
            answer[split + 4..].to_vec(),
        )
    }

    #[test]
    fn http_receives_a_protobuf_export() {
        let receiver = OtlpReceiver::start_http();
        let body = export_request().encode_to_vec();

        let (status, head, answer) =
            post(receiver.addr, "/v1/traces", "application/x-protobuf", &body);
        assert_eq!(status, 200, "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        ExportTraceServiceResponse::decode(answer.as_slice()).unwrap();
        assert_eq!(receiver.requests(), 1);
        assert_received(&receiver.spans());

        // Refusals are not counted as exports.
        let (status, ..) = post(
            receiver.addr,
            "/v1/metrics",
            "application/x-protobuf",
            &body,
        );
        assert_eq!(status, 404);
        let (status, ..) = post(receiver.addr, "/v1/traces", "application/json", b"{}");
        assert_eq!(status, 415);
        assert_eq!(receiver.requests(), 1);
    }
}
