//! `plinth-ingest`: the ingestion service clients post data to through the load balancer.
