-- The host an instance's port is published on when it is not the target's
-- loopback: the node running it on a swarm target (NULL: the loopback).
ALTER TABLE app_instances ADD COLUMN published_host TEXT;
