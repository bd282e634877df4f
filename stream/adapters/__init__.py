"""I/O adapters around the pure core: Faust app and agents, topics, codecs, HTTP, metrics, Kafka."""
