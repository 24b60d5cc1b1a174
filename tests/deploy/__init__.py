"""Tests of the container image and the docker-compose deployment."""
