-- Names for the places the views carry as codes, from the admin file's [[area]] entries:
-- each medical area's English name, and the municipalities (市区町村) that make it up.
ALTER TABLE medical_areas ADD COLUMN name_en text;

CREATE TABLE municipalities (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    name_en       text,
    medical_area  text NOT NULL REFERENCES medical_areas (code) ON DELETE CASCADE
);
