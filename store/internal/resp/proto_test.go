package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadCommand(t *testing.T) {
	long := strings.Repeat("k", maxArgBytes)
	tests := []struct {
		name  string
		input string
		want  [][]string // commands in order; nil entries are skipped
		err   string     // error of the read after the commands
		// tooLarge are the commands refused whole, in order, whose bytes
		// were read and thrown away
		tooLarge []string
	}{
		{name: "array", input: "*2\r\n$3\r\nGET\r\n$5\r\npools\r\n", want: [][]string{{"GET", "pools"}}, err: "EOF"},
		{name: "binary-safe argument", input: "*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", want: [][]string{{"GET", "a\r\nb"}}, err: "EOF"},
		{name: "empty argument", input: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", want: [][]string{{"ECHO", ""}}, err: "EOF"},
		{name: "pipelined", input: "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", want: [][]string{{"PING"}, {"PING"}}, err: "EOF"},
		{name: "inline", input: "GET  pools/a\r\n", want: [][]string{{"GET", "pools/a"}}, err: "EOF"},
		{name: "inline with bare newline, blank lines skipped", input: "\r\n\nPING\n", want: [][]string{{"PING"}}, err: "EOF"},
		{name: "longest argument", input: "*2\r\n$4\r\nECHO\r\n$65536\r\n" + long + "\r\n", want: [][]string{{"ECHO", long}}, err: "EOF"},
		{name: "argument too long, then the stream goes on", input: "*2\r\n$4\r\nECHO\r\n$65537\r\n" + long + "x\r\n*1\r\n$4\r\nPING\r\n",
			want: [][]string{{"PING"}}, err: "EOF", tooLarge: []string{"argument too large: 65537 bytes, the limit is 65536"}},
		{name: "announced length beyond any discard", input: "*1\r\n$1073741825\r\n", err: "Protocol error: bulk length: 1073741825 is over the limit of 1073741824"},
		{name: "too many arguments", input: "*4097\r\n", err: "Protocol error: array length: 4097 is over the limit of 4096"},
		{name: "negative length", input: "*-2\r\n", err: "Protocol error: array length: -2 is negative"},
		{name: "not a number", input: "*x\r\n", err: `Protocol error: array length: "x" is not a length`},
		{name: "null argument", input: "*1\r\n$-1\r\n", err: "Protocol error: a command argument cannot be a null bulk string"},
		{name: "not a bulk string", input: "*1\r\n:1\r\n", err: `Protocol error: expected '$', got ":1"`},
		{name: "missing CRLF after bulk", input: "*1\r\n$4\r\nPINGxx", err: "Protocol error: bulk string not followed by CRLF"},
		{name: "cut in a bulk string", input: "*1\r\n$4\r\nPI", err: "unexpected EOF"},
		{name: "cut between arguments", input: "*2\r\n$4\r\nPING\r\n", err: "unexpected EOF"},
		{name: "cut in a line", input: "PING", err: "unexpected EOF"},
		{name: "line too long", input: strings.Repeat("a", readBufferBytes+1) + "\r\n", err: "Protocol error: line longer than 16384 bytes"},
		{name: "empty arrays skipped", input: "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", want: [][]string{{"PING"}}, err: "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newCommandReader(strings.NewReader(tc.input), limitsFor(0))
			var got [][]string
			var tooLarge []string
			var err error
			for {
				var args [][]byte
				args, err = r.read()
				var tl *TooLargeError
				if errors.As(err, &tl) {
					tooLarge = append(tooLarge, tl.Error())
					continue
				}
				if err != nil {
					break
				}
				if args == nil {
					continue
				}
				var words []string
				for _, a := range args {
					words = append(words, string(a))
				}
				got = append(got, words)
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.tooLarge, tooLarge)
			require.Error(t, err)
			assert.Equal(t, tc.err, err.Error())
		})
	}
}

func TestCommandTooLong(t *testing.T) {
	var in bytes.Buffer
	in.WriteString("*17\r\n")
	arg := strings.Repeat("v", maxArgBytes)
	for range 17 {
		in.WriteString("$65536\r\n" + arg + "\r\n")
	}
	in.WriteString("PING\r\n")
	r := newCommandReader(&in, limitsFor(0))
	_, err := r.read()
	var tl *TooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, "command too large: 1114112 bytes, the limit is 1048576", tl.Error())
	args, err := r.read()
	require.NoError(t, err, "the oversized command was read whole: the next one parses")
	assert.Equal(t, [][]byte{[]byte("PING")}, args)
}

// TestAnnouncedLengthIsNotAllocated: a client that announces a large
// argument and sends little makes the reader hold what arrived, not what
// was announced.
func TestAnnouncedLengthIsNotAllocated(t *testing.T) {
	r := newCommandReader(strings.NewReader("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\nonly this"), limitsFor(1<<20))
	_, err := r.read()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.LessOrEqual(t, cap(r.buf), 2*readChunk, "buffer capacity after a 1 MiB announcement")
}

func TestReplyWriter(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := replyWriter{w: bw}
	w.simple("OK")
	w.err("ERR two\r\nlines")
	w.integer(-42)
	w.bulk([]byte("a\r\nb"))
	w.bulk([]byte{})
	w.null()
	w.arrayHeader(2)
	w.bulkString("x")
	w.null()
	require.NoError(t, bw.Flush())
	assert.Equal(t, "+OK\r\n-ERR two  lines\r\n:-42\r\n$4\r\na\r\nb\r\n$0\r\n\r\n$-1\r\n*2\r\n$1\r\nx\r\n$-1\r\n", out.String())
}

// FuzzReadCommand: whatever the bytes, the reader returns commands within
// the limits or an error, and never panics or loops.
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", "PING\r\n", "*1\r\n$-1\r\n", "*3\r\n$3\r\nGET\r\n", "$5\r\nhello\r\n",
		"*-1\r\n", "*1\r\n$99999999999\r\n", "\r\n\r\n", "*1\r\n$0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newCommandReader(bytes.NewReader(in), limitsFor(0))
		for range len(in) + 1 {
			args, err := r.read()
			if err != nil {
				var tl *TooLargeError
				if errors.As(err, &tl) {
					continue
				}
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errProtocol) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(args) > maxArgs {
				t.Fatalf("%d arguments", len(args))
			}
			total := 0
			for _, a := range args {
				total += len(a)
			}
			if total > maxCommandBytes {
				t.Fatalf("%d bytes", total)
			}
		}
		t.Fatalf("more commands than input bytes")
	})
}
