-- The apply runner's journal: the last event (started, finished, undone) of
-- each step of an operation in flight. An operation that ends (every step
-- finished, or every step undone) is forgotten; what is left after a crash
-- tells the next run which steps started, so that it finishes them or undoes
-- them. `operation` names one change of one object (kind, natural key and
-- create token), so two changes never share entries.
CREATE TABLE journal (
    operation    TEXT NOT NULL,
    step_index   BIGINT NOT NULL,
    step         TEXT NOT NULL,
    event        TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (operation, step_index)
);
