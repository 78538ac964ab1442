// Package netlab builds a small network of Linux network namespaces for the
// partition tests (docs/architecture.md, "Test tiers"): a "hub" namespace holding a
// bridge with an address (the test's client side) and one namespace per
// node, joined to the bridge by a veth pair, each node with its own address
// in a private /24 that exists only inside the lab's namespaces. Nothing is
// routed to or from the machine's own network.
//
// A network cut is a pair of silent iptables DROP rules inside the nodes'
// own namespaces, matching the peer's address only, so traffic between the
// hub and every node always flows: the test keeps talking to both sides of
// a partition.
//
// Every name carries a prefix unique to the lab (esft<pid>x<random>), so
// labs of concurrent test runs never meet; Close deletes exactly the
// namespaces the lab made, which removes their links, bridge and rules.
//
// The lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), the ip command of
// iproute2 and iptables-restore; scripts/ensure-netlab.sh installs the
// latter two. It only exists on Linux.
package netlab
