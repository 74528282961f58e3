"""Thread tools and the futures package: executors and work schedulers."""
