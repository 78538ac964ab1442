// kindnetd-lite: a minimal, self-written stand-in for kind's kindnetd image
// (docker.io/kindest/kindnetd), for clusters built without any registry.
//
// It honours the contract of kind's default CNI manifest unchanged: it runs as a
// hostNetwork DaemonSet with env HOST_IP / POD_SUBNET, NET_ADMIN+NET_RAW, and
// /etc/cni/net.d + /run/xtables.lock mounted. Every 10 seconds it:
//  1. finds its own Node and writes /etc/cni/net.d/10-kindnet.conflist (ptp +
//     host-local IPAM for the node's podCIDR, + portmap), which is what makes the
//     node Ready. The own Node is the one named $NODE_NAME, else the one named like
//     this host (a hostNetwork pod's hostname is the node name in kind); only when no
//     Node has that name, the one whose InternalIP is $HOST_IP. Not HOST_IP first: a
//     dockerd restart gives the node containers new IPs, shuffled among them, while
//     HOST_IP keeps the value of the pod's start, which may by then be another node's
//     InternalIP (and that node's podCIDR would be handed out here);
//  2. keeps a route to every other node's podCIDR via that node's current InternalIP;
//  3. masquerades pod traffic that leaves the pod subnet (iptables nat table);
//  4. keeps an "unreachable" route for the whole pod subnet, so that traffic to a pod IP
//     that no longer exists (a deleted pod, still dialled by its peers) fails at once on
//     the node instead of following the default route off the machine.
//
// Not implemented (kindnetd has them): IPv6/dual-stack, network policies (NRI),
// ip-masq-agent config, DNS cache.
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	cniConfPath = "/etc/cni/net.d/10-kindnet.conflist"
	routeProto  = netlink.RouteProtocol(77) // marks routes we own
)

const cniTemplate = `{
  "cniVersion": "0.4.0",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [ { "dst": "0.0.0.0/0" } ],
        "ranges": [ [ { "subnet": "%s" } ] ]
      },
      "mtu": %d
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    }
  ]
}
`

func main() {
	nodeName := os.Getenv("NODE_NAME")
	if nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			log.Fatalf("no NODE_NAME and no hostname: %v", err)
		}
		nodeName = h
	}
	hostIP := net.ParseIP(os.Getenv("HOST_IP")) // the fallback only; may be stale or unset
	podSubnet := os.Getenv("POD_SUBNET")
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("clientset: %v", err)
	}
	log.Printf("kindnetd-lite: node %q (fallback HOST_IP %s), pod subnet %q", nodeName, hostIP, podSubnet)
	waitForServiceRouting(os.Getenv("KUBERNETES_SERVICE_HOST"))

	for {
		if err := syncOnce(cs, nodeName, hostIP, podSubnet); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(10 * time.Second)
	}
}

func syncOnce(cs kubernetes.Interface, nodeName string, hostIP net.IP, podSubnet string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	self := ownNode(nodes.Items, nodeName, hostIP)
	if self == nil {
		return fmt.Errorf("no Node named %q, nor with InternalIP %s", nodeName, hostIP)
	}
	wanted := map[string]bool{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		ip := internalIPv4(n)
		cidr := podCIDRv4(n)
		if ip == nil || cidr == nil {
			continue
		}
		if n == self {
			if err := writeCNIConfig(cidr.String(), mtuFor(ip)); err != nil {
				log.Printf("write cni config: %v", err)
			}
			continue
		}
		wanted[cidr.String()] = true
		route := &netlink.Route{Dst: cidr, Gw: ip, Protocol: routeProto}
		if err := netlink.RouteReplace(route); err != nil {
			log.Printf("route %s via %s: %v", cidr, ip, err)
		}
	}
	if podSubnet != "" {
		ensureMasquerade(podSubnet)
		if _, subnet, err := net.ParseCIDR(podSubnet); err == nil && subnet.IP.To4() != nil {
			wanted[subnet.String()] = true
			ensureUnreachable(subnet)
		}
	}
	// drop routes we added for nodes that went away
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Protocol: routeProto}, netlink.RT_FILTER_PROTOCOL)
	if err == nil {
		for i := range routes {
			if routes[i].Dst != nil && !wanted[routes[i].Dst.String()] {
				log.Printf("deleting stale route %s", routes[i].Dst)
				_ = netlink.RouteDel(&routes[i])
			}
		}
	}
	return nil
}

// ownNode is the Node named nodeName; only when there is none, the Node whose
// InternalIP is hostIP (nil when neither exists).
func ownNode(nodes []corev1.Node, nodeName string, hostIP net.IP) *corev1.Node {
	for i := range nodes {
		if nodes[i].Name == nodeName {
			return &nodes[i]
		}
	}
	for i := range nodes {
		if ip := internalIPv4(&nodes[i]); hostIP != nil && ip != nil && ip.Equal(hostIP) {
			log.Printf("no Node named %q: using %s, whose InternalIP is HOST_IP %s", nodeName, nodes[i].Name, hostIP)
			return &nodes[i]
		}
	}
	return nil
}

// ensureUnreachable keeps "unreachable <pod subnet>": the longer routes (other nodes' pod
// CIDRs, this node's pods) win, and an address none of them covers gets an ICMP error
// instead of leaving through the node's default route.
func ensureUnreachable(subnet *net.IPNet) {
	route := &netlink.Route{Dst: subnet, Type: unix.RTN_UNREACHABLE, Protocol: routeProto}
	if err := netlink.RouteReplace(route); err != nil {
		log.Printf("unreachable route %s: %v", subnet, err)
	}
}

// waitForServiceRouting waits (up to 2 minutes) until kube-proxy (iptables mode) has
// programmed the kubernetes Service IP. Until then a hostNetwork pod's connection to
// 10.96.0.1 would follow the node's default route out of the cluster.
func waitForServiceRouting(svcIP string) {
	if svcIP == "" {
		return
	}
	for i := 0; i < 60; i++ {
		out, err := exec.Command("iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES").Output()
		if err == nil && strings.Contains(string(out), "-d "+svcIP+"/32") {
			if i > 0 {
				log.Printf("kube-proxy is routing %s", svcIP)
			}
			return
		}
		time.Sleep(2 * time.Second)
	}
	log.Printf("no kube-proxy rule for %s after 2m; continuing anyway", svcIP)
}

func internalIPv4(n *corev1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				return ip
			}
		}
	}
	return nil
}

func podCIDRv4(n *corev1.Node) *net.IPNet {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		if _, ipn, err := net.ParseCIDR(c); err == nil && ipn.IP.To4() != nil {
			return ipn
		}
	}
	return nil
}

func writeCNIConfig(cidr string, mtu int) error {
	want := []byte(fmt.Sprintf(cniTemplate, cidr, mtu))
	if have, err := os.ReadFile(cniConfPath); err == nil && bytes.Equal(have, want) {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(cniConfPath), ".10-kindnet.conflist.tmp")
	if err := os.WriteFile(tmp, want, 0o644); err != nil {
		return err
	}
	log.Printf("writing %s for pod CIDR %s", cniConfPath, cidr)
	return os.Rename(tmp, cniConfPath)
}

// ensureMasquerade SNATs pod traffic that leaves the pod subnet (e.g. to node IPs
// or the docker network), like kindnetd's ip-masq-agent does.
func ensureMasquerade(podSubnet string) {
	spec := []string{"POSTROUTING", "-s", podSubnet, "!", "-d", podSubnet,
		"-m", "comment", "--comment", "kindnetd-lite masquerade", "-j", "MASQUERADE"}
	check := append([]string{"-t", "nat", "-w", "5", "-C"}, spec...)
	add := append([]string{"-t", "nat", "-w", "5", "-A"}, spec...)
	if exec.Command("iptables", check...).Run() == nil {
		return
	}
	if out, err := exec.Command("iptables", add...).CombinedOutput(); err != nil {
		log.Printf("iptables masquerade rule: %v: %s", err, out)
	} else {
		log.Printf("added masquerade rule for %s", podSubnet)
	}
}

func mtuFor(ip net.IP) int {
	ifaces, err := net.Interfaces()
	if err != nil {
		return 1500
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
				return ifc.MTU
			}
		}
	}
	return 1500
}
