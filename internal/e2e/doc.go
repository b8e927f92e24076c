// Package e2e holds end-to-end tests that cross package lines: a broker
// subprocess killed with SIGKILL under load, and interop with other Kafka
// clients (librdkafka through confluent-kafka-go).
package e2e
