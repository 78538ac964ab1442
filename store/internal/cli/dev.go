package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
	"github.com/ephemeral-store/ephemeral-store/store/internal/server"
)

// newDevCommand starts a whole cluster on loopback, in this one process,
// with fresh certificates: the quickest way to try the store.
func newDevCommand() *cobra.Command {
	var (
		nodes    int
		basePort int
		dir      string
		level    string
		verbose  bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster on loopback with fresh certificates",
		Long: `Run a local cluster of --nodes nodes on 127.0.0.1 in this process. Certificates
(a root CA, a server certificate and a certificate for the user "myuser") are
written to a temporary directory, printed with the commands that use them, and
removed at exit. Node i serves clients on base-port+10*i.

The nodes log to dev-<i>.log in that directory (the path is printed), so the
terminal shows only the instructions; --verbose logs to stderr instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes%2 == 0 {
				return usageErrorf("--nodes %d: use an odd number (1, 3, 5): a majority must survive a failure", nodes)
			}
			if !slices.Contains(config.LogLevels, strings.ToLower(level)) {
				return usageErrorf("--log-level %q is not one of %s", level, strings.Join(config.LogLevels, ", "))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			logs := devLogs{level: level}
			if verbose {
				logs.stderr = cmd.ErrOrStderr()
			}
			return devCluster(ctx, cmd.OutOrStdout(), logs, nodes, basePort, dir)
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 3, "number of nodes (odd)")
	cmd.Flags().IntVar(&basePort, "base-port", 8087, "client port of node 0; node i uses base+10i (client), +1 (peer), +2 (probe), +3 (Redis protocol)")
	cmd.Flags().StringVar(&dir, "dir", "", "directory for certificates and users (default: a new temporary directory, removed at exit)")
	cmd.Flags().StringVar(&level, "log-level", "info", "log level of the nodes: debug, info, warn or error")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log to stderr instead of dev-<i>.log in the directory")
	return cmd
}

// devLogs says where the nodes of a dev cluster log.
type devLogs struct {
	level  string
	stderr io.Writer // nil: a file per node in the cluster's directory
}

// logger opens node i's logger; close releases its file.
func (d devLogs) logger(dir string, i int) (log *slog.Logger, path string, close func(), err error) {
	name := fmt.Sprintf("dev-%d", i)
	if d.stderr != nil {
		return newLogger(d.stderr, d.level).With("node", name), "", func() {}, nil
	}
	path = filepath.Join(dir, name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", nil, fmt.Errorf("node log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: logLevel(d.level)})), path, func() { _ = f.Close() }, nil
}

func devCluster(ctx context.Context, out io.Writer, logs devLogs, nodes, basePort int, dir string) error {
	keep := dir != ""
	if dir == "" {
		tmp, err := os.MkdirTemp("", "ephemeral-store-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	if _, err := pki.WriteBundle(dir, pki.BundleOptions{Users: []string{"myuser"}, Force: true}); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	users := filepath.Join(dir, "users")
	if err := os.MkdirAll(users, 0o755); err != nil {
		return err
	}
	entry := `{ "name": "myuser", "auth_mode": "certificate" }`
	if err := os.WriteFile(filepath.Join(users, "myuser.json"), []byte(entry+"\n"), 0o644); err != nil {
		return err
	}

	peers := make([]string, nodes)
	for i := range peers {
		peers[i] = fmt.Sprintf("127.0.0.1:%d", basePort+10*i+1)
	}
	var (
		servers  []*server.Server
		closers  []func()
		logPaths []string
	)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := len(servers) - 1; i >= 0; i-- {
			_ = servers[i].Close(sctx)
		}
		for _, c := range closers {
			c()
		}
	}()
	for i := 0; i < nodes; i++ {
		cfg := config.Default()
		cfg.NodeName = fmt.Sprintf("dev-%d", i)
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", basePort+10*i)
		cfg.PeerListen = peers[i]
		cfg.ProbeListen = fmt.Sprintf("127.0.0.1:%d", basePort+10*i+2)
		cfg.RESPListen = fmt.Sprintf("127.0.0.1:%d", basePort+10*i+3)
		cfg.Advertise = peers[i]
		if nodes > 1 {
			cfg.Peers = peers
			// Each node's RESP port differs here, unlike in a StatefulSet:
			// CLUSTER SLOTS needs every one by name.
			for j := 0; j < nodes; j++ {
				cfg.RESPPeers = append(cfg.RESPPeers, fmt.Sprintf("127.0.0.1:%d", basePort+10*j+3))
			}
		}
		cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		cfg.TLSCA = filepath.Join(dir, "rootCA.crt")
		cfg.UsersDir = users
		cfg.QuorumLossTimeout = 10 * time.Second
		cfg.LogLevel = logs.level
		log, path, closeLog, err := logs.logger(dir, i)
		if err != nil {
			return err
		}
		closers = append(closers, closeLog)
		if path != "" {
			logPaths = append(logPaths, path)
		}
		srv, err := server.New(cfg, server.Listeners{}, log)
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if err := srv.Start(); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		servers = append(servers, srv)
	}
	fmt.Fprintf(out, "waiting for %d nodes to form a cluster", nodes)
	for deadline := time.Now().Add(60 * time.Second); ; {
		ready := 0
		for _, s := range servers {
			if s.Ready() {
				ready++
			}
		}
		if ready == nodes {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes became ready within a minute", ready, nodes)
		}
		fmt.Fprint(out, ".")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	var endpoints []string
	for _, s := range servers {
		endpoints = append(endpoints, "https://"+s.ClientAddr().String())
	}
	fmt.Fprintln(out, " ready.")
	printDevInstructions(out, dir, endpoints, logPaths, basePort+2)
	<-ctx.Done()
	if keep {
		fmt.Fprintf(out, "stopping; certificates and logs stay in %s\n", dir)
	} else {
		fmt.Fprintf(out, "stopping; removing %s\n", dir)
	}
	return nil
}

// printDevInstructions tells a newcomer how to use the cluster that runs.
func printDevInstructions(out io.Writer, dir string, endpoints, logPaths []string, metricsPort int) {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(endpoints[0], "https://"))
	logs := "stderr (--verbose)"
	if len(logPaths) > 0 {
		logs = strings.Join(logPaths, " ")
	}
	fmt.Fprintf(out, `
A %d-node ephemeral-store cluster runs on loopback.
  Certificates: %s
  Node logs:    %s
  Metrics:      http://127.0.0.1:%d/metrics

In another terminal:

  export ES_ENDPOINTS=%s
  export ES_CERT=%s ES_KEY=%s ES_CACERT=%s

  ephemeral-store put pools/web-1 healthy --ttl 30s
  ephemeral-store get pools/web-1
  ephemeral-store list pools/
  ephemeral-store watch pools/
  ephemeral-store cluster

  curl --cacert $ES_CACERT --cert $ES_CERT --key $ES_KEY -X PUT --data-binary healthy https://localhost:%s/v1/kv/pools/web-1
  curl --cacert $ES_CACERT --cert $ES_CERT --key $ES_KEY https://localhost:%s/v1/kv/pools/web-1

  redis-cli --tls --cacert $ES_CACERT --cert $ES_CERT --key $ES_KEY -h localhost -p %d GET pools/web-1

Press Ctrl-C to stop (the data goes with it).
`, len(endpoints), dir, logs, metricsPort, strings.Join(endpoints, ","),
		filepath.Join(dir, "myuser.crt"), filepath.Join(dir, "myuser.key"), filepath.Join(dir, "rootCA.crt"),
		port, port, respPort(port))
}

// respPort is node 0's Redis-protocol port: its client port + 3.
func respPort(clientPort string) int {
	n, _ := strconv.Atoi(clientPort)
	return n + 3
}
