-- facility_inbox reads the medical area of an offer's origin from bed_board's facilities
-- when it is read, and no longer follows facility streams: a capacity declaration costs
-- it nothing. Its copy of the areas, and its versions of facility streams, go.
DROP TABLE facility_inbox_areas;
DELETE FROM projection_stream_versions
WHERE projection = 'facility_inbox' AND stream_id LIKE 'facility-%';
