package resp

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCommandTableListsWhatIsServed: COMMAND's entries are exactly the
// commands the port serves (plus COMMAND itself), so a client's routing
// never guesses.
func TestCommandTableListsWhatIsServed(t *testing.T) {
	var inTable []string
	for _, ci := range commandTable {
		if ci.name != "command" {
			inTable = append(inTable, strings.ToUpper(ci.name))
		}
	}
	assert.ElementsMatch(t, strings.Split(servedCommands, ", "), inTable)
}

func TestCommandReplies(t *testing.T) {
	c := newFixture(t).dial("all")
	assert.Equal(t, ":19", c.do("COMMAND", "COUNT"))
	assert.Equal(t, "[[get :2 [+readonly +fast] :1 :1 :1] nil [set :-3 [+write +denyoom] :1 :1 :1]]",
		c.do("COMMAND", "INFO", "GET", "KEYS", "set"))
	all := c.do("COMMAND")
	assert.Contains(t, all, "[mget :-2 [+readonly +fast] :1 :-1 :1]")
	assert.Contains(t, all, "[del :-2 [+write] :1 :-1 :1]")
	assert.Equal(t, "[]", c.do("COMMAND", "DOCS"), "redis-cli's start-up question gets nothing to parse")
	assert.Equal(t, "+PONG", c.do("PING"))
}
