-- leading comment; with a semicolon and a quote '
/* block; comment */ SELECT 1; -- trailing comment belongs to the next piece
/* outer /* inner; */ still outer; */ SELECT 2;
SELECT 3 +/* comment inside an operator; */ 4;
SELECT 5 =-- comment inside an operator;
    5;
SELECT "--not a comment", '/* nor this */';
/**/ /*/ odd closers; */ /***/ SELECT 6;
SELECT 7; -- a comment ends at a carriage return;SELECT 8;
/* final comment; nothing after it */
