-- The target a move left while the instance's containers there are still
-- to be removed (NULL: none); the next deployment removes them.
ALTER TABLE app_instances ADD COLUMN moved_from TEXT;
