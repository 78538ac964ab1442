package cluster

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
)

func voter(id, addr string) raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}
}

func TestClassifyVotersNeverTakesSilenceAsProof(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{
		voter("n0/a", "n0:8088"), voter("n1/b", "n1:8088"), voter("n2/c", "n2:8088"),
		voter("n3/d", "n3:8088"), voter("n4/e", "n4:8088"),
		{Suffrage: raft.Nonvoter, ID: "n5/f", Address: "n5:8088"},
	}}
	me := raft.ServerID("n0/a")
	member := func(id, cluster string) statusResponse {
		return statusResponse{ID: id, Member: true, ClusterID: cluster}
	}
	tests := []struct {
		name              string
		answers           map[string]statusResponse
		wantAlive         int
		wantSilent, wantG []string
	}{
		{
			name:      "every other voter silent: all counted alive",
			answers:   map[string]statusResponse{},
			wantAlive: 5, wantSilent: []string{"n1/b", "n2/c", "n3/d", "n4/e"},
		},
		{
			name: "new incarnations at three addresses are gone",
			answers: map[string]statusResponse{
				"n1:8088": {ID: "n1/x"}, "n2:8088": {ID: "n2/y"}, "n3:8088": {ID: "n3/z"},
			},
			wantAlive: 2, wantSilent: []string{"n4/e"}, wantG: []string{"n1/b", "n2/c", "n3/d"},
		},
		{
			name: "the same incarnation answering as a member of this cluster is alive",
			answers: map[string]statusResponse{
				"n1:8088": member("n1/b", "c1"), "n2:8088": member("n2/c", "c1"),
			},
			wantAlive: 5, wantSilent: []string{"n3/d", "n4/e"},
		},
		{
			name: "same incarnation in another cluster or as a non-member is gone",
			answers: map[string]statusResponse{
				"n1:8088": member("n1/b", "other"), "n2:8088": {ID: "n2/c"},
			},
			wantAlive: 3, wantSilent: []string{"n3/d", "n4/e"}, wantG: []string{"n1/b", "n2/c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			voters, alive, silent, gone := classifyVoters(cfg, me, "c1", tt.answers)
			assert.Equal(t, 5, voters, "the non-voter is not counted")
			assert.Equal(t, tt.wantAlive, alive)
			assert.ElementsMatch(t, tt.wantSilent, silent)
			assert.ElementsMatch(t, tt.wantG, gone)
		})
	}
}

func TestPlaceholdersAreAlwaysGone(t *testing.T) {
	cfg := raft.Configuration{Servers: []raft.Server{
		voter("n0/a", "n0:8088"), voter("n1/b", "n1:8088"), voter("n2/c", "n2:8088"),
		{Suffrage: raft.Voter, ID: placeholderID("n3:8088"), Address: "n3:8088"},
		{Suffrage: raft.Voter, ID: placeholderID("n4:8088"), Address: "n4:8088"},
	}}
	_, alive, silent, gone := classifyVoters(cfg, "n0/a", "c1", nil)
	assert.Equal(t, 3, alive, "a placeholder never had a process: it cannot be alive, even silent")
	assert.Len(t, silent, 2)
	assert.ElementsMatch(t, []string{"n3:8088/placeholder", "n4:8088/placeholder"}, gone)
	assert.True(t, isPlaceholder(placeholderID("n3:8088")))
	assert.False(t, isPlaceholder("n3/placeholde"))
}

func TestHasVoterForCountsIncarnationsAndPlaceholdersOnly(t *testing.T) {
	nonvoter := func(id, addr string) raft.Server {
		return raft.Server{Suffrage: raft.Nonvoter, ID: raft.ServerID(id), Address: raft.ServerAddress(addr)}
	}
	tests := []struct {
		name    string
		servers []raft.Server
		want    bool
	}{
		{"a live incarnation votes", []raft.Server{voter("es-0/a", "es-0:8088"), voter("es-1/b", "es-1:8088")}, true},
		{"its placeholder votes", []raft.Server{voter("es-0/a", "es-0:8088"), placeholderFor("es-1:8088")}, true},
		{"a retirement cut short after the removal", []raft.Server{voter("es-0/a", "es-0:8088"), voter("es-2/c", "es-2:8088")}, false},
		{"a new incarnation not yet promoted does not vote", []raft.Server{voter("es-0/a", "es-0:8088"), nonvoter("es-1/d", "es-1:8088")}, false},
		{"another replica's placeholder does not count", []raft.Server{voter("es-0/a", "es-0:8088"), placeholderFor("es-2:8088")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, hasVoterFor(raft.Configuration{Servers: tt.servers}, "es-1:8088"))
		})
	}
}
