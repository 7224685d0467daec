// Package sqlsplit cuts PostgreSQL migration files into statements exactly
// where psql would, and checks them before anything runs. It is pure code:
// no I/O and no database.
//
// dbinit sends a file to the server one statement at a time, so that a
// failure can be reported as FILE:LINE:COL and so that statements that
// cannot run in a transaction block can be recognized. Splitting on ";" is
// only right outside quotes, comments and bodies, and getting that wrong
// either sends half a statement or silently glues two together, so the
// lexer follows the server's own (src/backend/parser/scan.l, as mirrored
// for psql in src/fe_utils/psqlscan.l) rule for rule:
//
//   - '...', where a doubled quote stands for one. standard_conforming_strings
//     is on, so a backslash is an ordinary character there; E'...' adds
//     backslash escapes (\' and \\). B'...', X'...', N'...' and U&'...' are
//     other prefixed forms. A prefix letter is only a prefix when it starts
//     a token: in namE'x' the E belongs to the identifier.
//   - A literal continues across whitespace holding a newline: 'a' and 'b'
//     on the next line are one literal, still in E mode if it began so.
//   - "..." identifiers, where a doubled double quote stands for one, and
//     U&"...".
//   - $tag$ ... $tag$ and $$ ... $$ dollar quotes, with tags spelled like
//     identifiers without "$". $1 is a parameter, and a "$" inside an
//     identifier (a$b, foo$$bar) starts nothing.
//   - -- comments to the end of the line, and /* */ comments, which nest.
//     Both start even in the middle of an operator such as =-- or +/*.
//   - Numbers as in PostgreSQL 16 and later, where trailing identifier
//     characters belong to the number (and make it invalid): 1e'x' is not
//     an escape string.
//
// On top of the tokens, Split applies psql's rules for where a statement
// ends: at a ";" outside parentheses and outside the BEGIN ATOMIC ... END
// body of a CREATE FUNCTION or CREATE PROCEDURE, found with psql's own
// heuristic (BEGIN and CASE open, END closes, once the statement starts
// with CREATE [OR REPLACE] FUNCTION or PROCEDURE). Like psql, it passes
// over the inline data after COPY ... FROM STDIN, up to the \. line.
// Because Split cuts where psql does, a file means the same to dbinit as to
// psql -f.
//
// The pieces Split returns cover the input exactly, so that positions in a
// statement map back to the file: Statement.ErrorOffset turns the character
// position of a server error into a byte offset, and Pos turns that into a
// line and column.
//
// MetaCommands and Unterminated find what makes a file unfit to run at all:
// psql backslash commands, which only psql understands, and a quote or
// comment left open, which swallows the rest of the file. The Statement
// methods NoTransaction, TransactionControl and CopyFromStdin classify
// statements for dbinit's rules.
//
// Deliberate differences from psql, none of which matter for a file dbinit
// can run:
//
//   - psql variables (:name, :'name', :"name") are not interpolated; they
//     lex as the server would see them.
//   - A backslash command takes the rest of its line; psql would resume
//     SQL after a \\ separator on the same line. Inline data after
//     \copy ... from stdin is lexed as SQL.
//   - The data after COPY ... FROM STDIN starts right after its ";", not
//     on the next line.
//   - Lines are counted at '\n' only; a lone '\r' (classic Mac OS line
//     endings) does not start a line, though it does end a -- comment.
package sqlsplit
