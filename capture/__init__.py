"""The capture endpoint: what browsers (posthog-js, plain rrweb) post, written to Kafka."""
