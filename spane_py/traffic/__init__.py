"""Traffic control shared by every worker process: rate limits and circuit breakers."""
