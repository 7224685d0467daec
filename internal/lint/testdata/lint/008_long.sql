CREATE TABLE audit (id int, this_column_name_is_far_too_long_for_postgresql_which_keeps_63_bytes int);
