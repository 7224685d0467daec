DROP TABLE app.notes;
