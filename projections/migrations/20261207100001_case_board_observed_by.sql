-- case_board shows who recorded a case's last observation: the owning health center for a
-- patient at home, the hospital, hotel or temporary facility where the patient is otherwise.
-- Observations recorded before did not keep it, so there is nothing to replay.
ALTER TABLE case_board ADD COLUMN last_observed_by text;
