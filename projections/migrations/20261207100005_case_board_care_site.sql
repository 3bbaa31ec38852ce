-- case_board shows the clinic or mobile clinic caring for a patient at home (DESIGN.md
-- §5.4), and a clinic's board is the cases in its care. No event before this one named a
-- care site, so there is nothing to replay.
ALTER TABLE case_board ADD COLUMN care_site text;
CREATE INDEX case_board_care_site ON case_board (care_site) WHERE care_site IS NOT NULL;
