SELECT 1;
-- café ; crème brûlée
SELECT 'été; €; 😀' AS "à la carte";

INSERT INTO t (nom) VALUES ('Zoë'), ('日本');
