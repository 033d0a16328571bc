//! What the workers' tests (payments, notifications) share (feature `worker`): a
//! worker started on its own runtime against an in-process devbroker, a producer
//! to feed it, and shutdown when dropped. Each service keeps its own configuration
//! and what it checks (payments' database, notifications' Redis) in its tests.

use std::{fmt::Debug, net::SocketAddr, time::Duration};

use service_skeleton::{OpsAddresses, Running, TaskError};
use tokio_util::sync::CancellationToken;

/// A broker and a worker running against it. The tests are synchronous (the
/// `postgres` client refuses to run inside an async context); the worker runs on
/// its own runtime, `rt`.
pub struct Worker<E> {
    pub rt: tokio::runtime::Runtime,
    pub broker: devbroker::BackgroundBroker,
    pub shutdown: CancellationToken,
    pub running: Option<Running<OpsAddresses, E>>,
    producer: bus::Producer,
}

impl<E> Worker<E>
where
    E: From<TaskError> + Debug + Send + 'static,
{
    /// Starts a broker, then the worker with the configuration `configure` makes for
    /// that broker (`start` is the service's `start`), then a producer (`client_id`).
    /// Returns the configuration the worker runs with.
    pub fn start<C, F>(
        client_id: &str,
        configure: impl FnOnce(&devbroker::BackgroundBroker) -> C,
        start: impl FnOnce(C, CancellationToken) -> F,
    ) -> (Self, C)
    where
        C: Clone,
        F: Future<Output = Result<Running<OpsAddresses, E>, E>>,
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
        let config = configure(&broker);
        let shutdown = CancellationToken::new();
        let running = rt
            .block_on(start(config.clone(), shutdown.clone()))
            .unwrap();
        let producer = producer(&broker, client_id);
        let worker = Self {
            rt,
            broker,
            shutdown,
            running: Some(running),
            producer,
        };
        (worker, config)
    }

    /// Sends one message to `topic`.
    pub fn produce(&mut self, topic: &str, key: &str, value: &[u8]) {
        self.producer
            .send(bus::Record {
                topic,
                key: key.as_bytes(),
                value,
                headers: &[],
            })
            .unwrap();
    }

    pub fn health_addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().health_addr
    }

    /// Cancels and waits for the worker to stop; its result must be Ok.
    pub fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            self.rt.block_on(running.wait()).unwrap();
        }
    }
}

/// A producer to `broker` (`client_id`), as the tests feed a worker.
pub fn producer(broker: &devbroker::BackgroundBroker, client_id: &str) -> bus::Producer {
    bus::Producer::connect(bus::ProducerConfig {
        brokers: vec![broker.bootstrap()],
        ack_timeout: Duration::from_secs(5),
        max_retries: 5,
        client_id: client_id.into(),
        client: bus::KafkaClient::Kafka,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: bus::RdkafkaProperties::none(),
    })
    .unwrap()
}

/// `values` as the messages of one poll of partition 0 of `topic`, at offsets 0, 1,
/// ..., for a handler tested without a broker.
pub fn poll_of<'a>(topic: &'a str, values: &'a [String]) -> Vec<bus::Message<'a>> {
    values
        .iter()
        .zip(0..)
        .map(|(value, offset)| bus::Message {
            topic,
            partition: 0,
            offset,
            key: b"k",
            value: value.as_bytes(),
            headers: &[],
            trace: None,
        })
        .collect()
}

/// A failing test still stops the worker, so dropping the runtime does not wait
/// forever on its threads.
impl<E> Drop for Worker<E> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
