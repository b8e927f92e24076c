// Driven by TestKafkaJSInterop: KafkaJS against a Tiercel broker.
// argv: broker address, topic to create and produce to, a topic kgo filled,
// consumer group. Prints one JSON object on stdout; exits non-zero on error.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const [broker, topic, fromGo, groupId] = process.argv.slice(2);
const plain = 300, gzipped = 100;

async function main() {
  const kafka = new Kafka({ clientId: 'tiercel-interop', brokers: [broker], logLevel: logLevel.WARN,
    retry: { retries: 8, initialRetryTime: 100 } });

  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  await admin.disconnect();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const acks = [];
  for (let i = 0; i < plain; i += 50) {
    const messages = [];
    for (let j = i; j < i + 50; j++) {
      messages.push({ key: `k-${j % 10}`, value: `v-${j}`, headers: { seq: String(j) } });
    }
    acks.push(...await producer.send({ topic, acks: -1, messages }));
  }
  const gz = [];
  for (let j = plain; j < plain + gzipped; j++) {
    gz.push({ key: `k-${j % 10}`, value: `v-${j}`, headers: { seq: String(j) } });
  }
  acks.push(...await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: gz }));
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic, fromGo], fromBeginning: true });
  const consumed = [];
  const want = plain + gzipped + Number(process.env.FROM_GO_RECORDS || 0);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${consumed.length} of ${want} in 60 s`)), 60000);
    consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        consumed.push({ topic: t, partition, offset: Number(message.offset), key: message.key && message.key.toString(),
          value: message.value.toString(), seq: message.headers.seq ? message.headers.seq.toString() : null });
        if (consumed.length >= want) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect(); // commits what was consumed
  console.log(JSON.stringify({ created, partitions: md.topics[0].partitions.length,
    acks: acks.map((a) => ({ partition: a.partition, errorCode: a.errorCode, baseOffset: Number(a.baseOffset) })), consumed }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
