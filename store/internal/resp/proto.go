package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits bound what one command may make the server hold: a client chooses
// the lengths it announces, so they are checked before anything is read.
// The byte limits grow with the largest value a SET may carry (limitsFor).
const (
	maxArgs         = 4096     // arguments of one command (MGET of many keys)
	maxArgBytes     = 64 << 10 // one argument, at least
	maxCommandBytes = 1 << 20  // all the arguments of one command, at least
	readBufferBytes = 16 << 10 // also the longest header or inline line
)

// limits are one server's byte limits.
type limits struct{ arg, command int }

// limitsFor admits a value of maxValue bytes with its key and options.
func limitsFor(maxValue int) limits {
	return limits{arg: max(maxArgBytes, maxValue), command: max(maxCommandBytes, maxValue+maxArgBytes)}
}

// errProtocol marks input that is not RESP: the connection is answered with
// "-ERR Protocol error: ..." and closed, as Redis does, since the stream
// can no longer be parsed.
var errProtocol = errors.New("Protocol error")

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

// commandReader reads commands from a connection into a buffer it reuses:
// the arguments of a command are valid until the next call.
type commandReader struct {
	r    *bufio.Reader
	lim  limits
	buf  []byte
	ends []int
	args [][]byte
}

func newCommandReader(r io.Reader, lim limits) *commandReader {
	return &commandReader{r: bufio.NewReaderSize(r, readBufferBytes), lim: lim}
}

// buffered reports whether more input is already read: a pipelining client
// sent it, and answers are flushed only once it is consumed.
func (c *commandReader) buffered() bool { return c.r.Buffered() > 0 }

// read returns the next command: a RESP array of bulk strings (what every
// client library sends), or an inline command line of words separated by
// spaces (what a person types into telnet). Empty inline lines are skipped.
// io.EOF means the client closed the connection between commands.
func (c *commandReader) read() ([][]byte, error) {
	for {
		line, err := c.line()
		if err != nil {
			return nil, err
		}
		if len(line) > 0 && line[0] == '*' {
			return c.array(line[1:])
		}
		if args := c.inline(line); len(args) > 0 {
			return args, nil
		}
	}
}

// line reads one line without its "\r\n" (a bare "\n" is accepted, as
// Redis does for inline commands).
func (c *commandReader) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, protocolError("line longer than %d bytes", readBufferBytes)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// TooLargeError is a command whose argument, or whole, was over the
// limits. Its bytes were read and thrown away, so the stream is still in
// step and the connection stays usable.
type TooLargeError struct {
	What        string // "argument" or "command"
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s too large: %d bytes, the limit is %d", e.What, e.Size, e.Limit)
}

// maxDiscardBytes bounds what an oversized argument may announce: beyond
// it the client is not answered but cut (a protocol error).
const maxDiscardBytes = 1 << 30

// readChunk is how much of an argument is read at a time: the buffer
// grows with the bytes that arrive, not with the length a client
// announces.
const readChunk = 64 << 10

func (c *commandReader) array(count []byte) ([][]byte, error) {
	n, err := parseLength(count, maxArgs)
	if err != nil {
		return nil, protocolError("array length: %v", err)
	}
	if n <= 0 {
		// "*0" and "*-1" carry no command; Redis ignores them too.
		return nil, nil
	}
	if cap(c.buf) > readChunk {
		c.buf = nil // one large command does not pin its buffer for the connection's life
	}
	c.buf = c.buf[:0]
	c.ends = c.ends[:0]
	var tooLarge *TooLargeError
	for range n {
		header, err := c.line()
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		if len(header) == 0 || header[0] != '$' {
			return nil, protocolError("expected '$', got %q", truncate(header))
		}
		size, err := parseLength(header[1:], maxDiscardBytes)
		if err != nil {
			return nil, protocolError("bulk length: %v", err)
		}
		if size < 0 {
			return nil, protocolError("a command argument cannot be a null bulk string")
		}
		switch {
		case tooLarge == nil && size > c.lim.arg:
			tooLarge = &TooLargeError{What: "argument", Size: size, Limit: c.lim.arg}
		case tooLarge == nil && len(c.buf)+size > c.lim.command:
			tooLarge = &TooLargeError{What: "command", Size: len(c.buf) + size, Limit: c.lim.command}
		}
		if tooLarge != nil {
			if _, err := io.CopyN(io.Discard, c.r, int64(size)+2); err != nil {
				return nil, unexpectedEOF(err)
			}
			continue
		}
		start := len(c.buf)
		for remaining := size + 2; remaining > 0; {
			chunk := min(remaining, readChunk)
			c.buf = append(c.buf, make([]byte, chunk)...)
			if _, err := io.ReadFull(c.r, c.buf[len(c.buf)-chunk:]); err != nil {
				return nil, unexpectedEOF(err)
			}
			remaining -= chunk
		}
		if !bytes.Equal(c.buf[start+size:], []byte("\r\n")) {
			return nil, protocolError("bulk string not followed by CRLF")
		}
		c.buf = c.buf[:start+size]
		c.ends = append(c.ends, len(c.buf))
	}
	if tooLarge != nil {
		return nil, tooLarge
	}
	// Slices into buf are taken only now: appending above may move it.
	c.args = c.args[:0]
	start := 0
	for _, end := range c.ends {
		c.args = append(c.args, c.buf[start:end:end])
		start = end
	}
	return c.args, nil
}

// inline splits a line into words; quoting is not supported (clients that
// need binary keys send arrays).
func (c *commandReader) inline(line []byte) [][]byte {
	c.buf = append(c.buf[:0], line...)
	c.args = c.args[:0]
	for _, f := range bytes.Fields(c.buf) {
		c.args = append(c.args, f)
	}
	return c.args
}

// parseLength reads a RESP length: -1 (null) or 0 to limit.
func parseLength(b []byte, limit int) (int, error) {
	if len(b) == 0 || len(b) > 10 {
		return 0, fmt.Errorf("%q is not a length", truncate(b))
	}
	n, err := strconv.Atoi(string(b))
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a length", truncate(b))
	case n < -1:
		return 0, fmt.Errorf("%d is negative", n)
	case n > limit:
		return 0, fmt.Errorf("%d is over the limit of %d", n, limit)
	}
	return n, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// replyWriter writes RESP2 replies into a buffered writer. Write errors
// are not checked here: bufio.Writer keeps the first one and returns it
// from Flush, where the connection loop ends on it.
type replyWriter struct {
	w   *bufio.Writer
	num [20]byte
}

func (w *replyWriter) str(s string)   { _, _ = w.w.WriteString(s) }
func (w *replyWriter) bytes(b []byte) { _, _ = w.w.Write(b) }

// line writes a type byte, a text and CRLF.
func (w *replyWriter) line(kind byte, s string) {
	_ = w.w.WriteByte(kind)
	w.str(s)
	w.str("\r\n")
}

// header writes a type byte, a length and CRLF.
func (w *replyWriter) header(kind byte, n int64) {
	_ = w.w.WriteByte(kind)
	w.bytes(strconv.AppendInt(w.num[:0], n, 10))
	w.str("\r\n")
}

func (w *replyWriter) simple(s string) { w.line('+', s) }

// err writes an error reply; msg starts with its code ("ERR", "NOPERM", ...)
// and is made one line, since a newline would end the reply early.
func (w *replyWriter) err(msg string) { w.line('-', oneLine(msg)) }

// oneLine replaces line breaks, which would end an error reply early.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

func (w *replyWriter) integer(n int64) { w.header(':', n) }

func (w *replyWriter) bulk(b []byte) {
	w.header('$', int64(len(b)))
	w.bytes(b)
	w.str("\r\n")
}

func (w *replyWriter) bulkString(s string) {
	w.header('$', int64(len(s)))
	w.str(s)
	w.str("\r\n")
}

func (w *replyWriter) null() { w.str("$-1\r\n") }

func (w *replyWriter) arrayHeader(n int) { w.header('*', int64(n)) }
