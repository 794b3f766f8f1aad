-- How many copies of the app container run (more than one only on a swarm
-- target, for an app whose app container keeps nothing).
ALTER TABLE app_instances ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1;
