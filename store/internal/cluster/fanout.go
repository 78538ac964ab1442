package cluster

import "sync"

// fanOut calls call for every address at once, waits for all of them, and
// returns the results of the calls that succeeded, by address. Discovery,
// the bootstrap vote and forced reform all ask every peer in parallel so
// that one silent peer costs one timeout, not one each.
func fanOut[T any](addrs []string, call func(addr string) (T, bool)) map[string]T {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[string]T, len(addrs))
	)
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, ok := call(addr); ok {
				mu.Lock()
				out[addr] = v
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// otherPeers are the addresses of every peer to ask but this node: the
// configured replicas and the other servers of its configuration
// (probeTargets).
func (n *Node) otherPeers() []string {
	var out []string
	for _, p := range n.probeTargets() {
		out = append(out, p.Address)
	}
	return out
}

// peerFollowingLeader returns an answering member of cluster that follows
// a leader, if any: then that cluster lives, whatever this node sees.
func peerFollowingLeader(statuses map[Peer]statusResponse, cluster string) (statusResponse, bool) {
	for _, st := range statuses {
		if st.Member && st.ClusterID == cluster && st.LeaderID != "" {
			return st, true
		}
	}
	return statusResponse{}, false
}
