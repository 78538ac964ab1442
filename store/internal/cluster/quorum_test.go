package cluster

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
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

// The schedule of a composed fault: voter S is cut off for longer than the
// quorum-loss timeout; meanwhile X restarts and its new incarnation X' is
// promoted, then B and C restart (placeholders stand for them, their new
// incarnations wait to join). When the partition heals, S's own
// configuration names X, B and C, whose addresses now answer as other
// incarnations: judged by it, three of five voters are gone and S would
// wipe itself, although S, A and X' are three of the five current voters
// and hold every write. Judged by the newest configuration its cluster
// reports, S waits.
func TestQuorumLossJudgedByTheNewestConfiguration(t *testing.T) {
	stale := raft.Configuration{Servers: []raft.Server{
		voter("s/1", "s:8088"), voter("a/1", "a:8088"), voter("x/1", "x:8088"), voter("b/1", "b:8088"), voter("c/1", "c:8088"),
	}}
	current := []configServer{
		{ID: "s/1", Address: "s:8088"}, {ID: "a/1", Address: "a:8088"}, {ID: "x/2", Address: "x:8088"},
		{ID: string(placeholderID("b:8088")), Address: string(placeholderAddress("b:8088"))},
		{ID: string(placeholderID("c:8088")), Address: string(placeholderAddress("c:8088"))},
	}
	answers := map[string]statusResponse{
		"a:8088": {ID: "a/1", Member: true, ClusterID: "c1", Configuration: current, ConfigIndex: 40},
		"x:8088": {ID: "x/2", Member: true, ClusterID: "c1", Configuration: current, ConfigIndex: 40},
		"b:8088": {ID: "b/2"},
		"c:8088": {ID: "c/2"},
	}
	cfg, by := newestConfiguration(stale, 12, "c1", answers)
	assert.Contains(t, []string{"a/1", "x/2"}, by, "a member's newer configuration wins over this node's own")
	voters, alive, silent, gone := classifyVoters(cfg, "s/1", "c1", answers)
	assert.Equal(t, 5, voters)
	assert.Equal(t, 3, alive, "S, A and X' are a majority of the current voters: no proof of loss")
	assert.Empty(t, silent)
	assert.ElementsMatch(t, []string{string(placeholderID("b:8088")), string(placeholderID("c:8088"))}, gone)

	t.Run("an older configuration reported by a peer is ignored", func(t *testing.T) {
		older := map[string]statusResponse{"a:8088": {ID: "a/1", Member: true, ClusterID: "c1", Configuration: current[:1], ConfigIndex: 3}}
		got, by := newestConfiguration(stale, 12, "c1", older)
		assert.Equal(t, "self", by)
		assert.Equal(t, stale, got)
	})
	t.Run("another cluster's configuration is never taken", func(t *testing.T) {
		other := map[string]statusResponse{"a:8088": {ID: "a/9", Member: true, ClusterID: "c2", Configuration: current, ConfigIndex: 99}}
		_, by := newestConfiguration(stale, 12, "c1", other)
		assert.Equal(t, "self", by)
	})
	t.Run("a member of this cluster under a new incarnation is never gone", func(t *testing.T) {
		// A peer of an older version reports no configuration: its
		// membership alone says the voter's address still votes here.
		old := map[string]statusResponse{"x:8088": {ID: "x/2", Member: true, ClusterID: "c1"}}
		_, alive, _, gone := classifyVoters(stale, "s/1", "c1", old)
		assert.Equal(t, 5, alive)
		assert.Empty(t, gone)
	})
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

// A healthy cluster of five voters meets a fresh one of three voters and
// two placeholders (a replica restarted during a bootstrap behind a
// partition): the fresh one is the smaller and gives way, whatever the
// random cluster IDs say.
func TestForkResolutionCountsRealVotersOnly(t *testing.T) {
	healthy := statusResponse{ID: "a/1", Member: true, ClusterID: "c-aaa", LeaderID: "a/1",
		Voters: []string{"a/1", "b/1", "c/1", "d/1", "e/1"}}
	fresh := statusResponse{ID: "d/2", Member: true, ClusterID: "c-zzz", LeaderID: "d/2",
		Voters: []string{"d/2", "e/2", "c/2", string(placeholderID("a:8088")), string(placeholderID("b:8088"))}}

	forks, winner := forkWinner("c-aaa", 5, false, map[Peer]statusResponse{{Ordinal: 3, Address: "d:8088"}: fresh})
	assert.Equal(t, []api.Fork{{Peer: "d:8088", ClusterID: "c-zzz", Voters: 3}}, forks, "placeholders are not voters")
	assert.Nil(t, winner, "the healthy five-voter cluster must not give way to three voters and two placeholders")

	forks, winner = forkWinner("c-zzz", 3, false, map[Peer]statusResponse{{Ordinal: 0, Address: "a:8088"}: healthy})
	assert.Len(t, forks, 1)
	if assert.NotNil(t, winner, "the fresh cluster gives way") {
		assert.Equal(t, "c-aaa", winner.ClusterID)
	}

	t.Run("equal real voters: the larger cluster ID wins", func(t *testing.T) {
		_, winner := forkWinner("c-aaa", 3, false, map[Peer]statusResponse{{Ordinal: 3, Address: "d:8088"}: fresh})
		assert.NotNil(t, winner)
	})
	t.Run("a side without a leader gives way to one with a leader", func(t *testing.T) {
		_, winner := forkWinner("c-aaa", 5, true, map[Peer]statusResponse{{Ordinal: 3, Address: "d:8088"}: fresh})
		assert.NotNil(t, winner)
	})
}

func TestRemovedOnlyByANewerConfiguration(t *testing.T) {
	tests := []struct {
		name            string
		listed          bool
		seenAt, current uint64
		want            bool
	}{
		{"listed", true, 40, 40, false},
		{"never listed yet (a joiner before its configuration arrives)", false, 0, 12, false},
		{"a newer configuration without it: removed", false, 40, 55, true},
		{"a snapshot meant for the old incarnation reverts to an older configuration", false, 40, 31, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, removedFromConfiguration(tt.listed, tt.seenAt, tt.current))
		})
	}
}

// After a scale-down the replicas beyond the count are forgotten, so a
// later scale-up does not bring them back as placeholders: with
// {a0, a1, a2, placeholder 3, placeholder 4} every live voter is needed
// until the new pods catch up, and one fault then loses every key.
func TestScaleDownForgetsTheReplicasItRemoved(t *testing.T) {
	n := &Node{}
	for i := range 5 {
		n.opts.Peers = append(n.opts.Peers, Peer{Ordinal: i, Address: fmt.Sprintf("es-%d:8088", i)})
	}
	five := raft.Configuration{}
	for i := range 5 {
		five.Servers = append(five.Servers, voter(fmt.Sprintf("es-%d/a", i), fmt.Sprintf("es-%d:8088", i)))
	}
	n.noteVoters("c1", five, 5)
	assert.Len(t, n.voted, 5)

	three := raft.Configuration{Servers: five.Servers[:3]}
	n.noteVoters("c1", three, 3)
	assert.Equal(t, map[string]bool{"es-0:8088": true, "es-1:8088": true, "es-2:8088": true}, n.voted,
		"replicas 3 and 4 were removed by the scale-down and must not be restored as placeholders when the count goes back to 5")

	n.noteVoters("c1", three, 0)
	assert.Len(t, n.voted, 3, "an unknown count forgets nothing")
}
