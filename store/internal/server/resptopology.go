package server

import (
	"net"
	"slices"
	"strings"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/resp"
)

// respTopology answers the RESP port's CLUSTER SLOTS and NODES from the
// Raft configuration: the leader owns every slot, the other voters are
// its replicas, each named by the address clients reach its RESP port at.
type respTopology struct {
	status func() api.ClusterStatus
	// peers and respPeers are --peers and --resp-peers, in the same
	// order; respPort is this node's bound RESP port, the default port of
	// every member.
	peers, respPeers []string
	respPort         string
}

func (t respTopology) Members() (leader resp.Member, replicas []resp.Member, ok bool) {
	st := t.status()
	for _, m := range st.Members {
		// A placeholder holds the vote of a replica whose live process
		// is not a member yet: no client can be sent to it.
		if m.Suffrage != api.SuffrageVoter || strings.HasSuffix(m.ID, "/placeholder") {
			continue
		}
		rm := resp.Member{Name: m.Name, Addr: t.addr(m.Address), Self: m.ID == st.Self}
		if m.Leader {
			leader, ok = rm, true
		} else {
			replicas = append(replicas, rm)
		}
	}
	return leader, replicas, ok
}

// addr is the RESP address of the member whose peer address is peer.
func (t respTopology) addr(peer string) string {
	if i := slices.Index(t.peers, peer); i >= 0 && i < len(t.respPeers) {
		return t.respPeers[i]
	}
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	return net.JoinHostPort(host, t.respPort)
}
