package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newClusterCommand() *cobra.Command {
	var (
		co     clientOptions
		output string
	)
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster's members and leader",
		Long: `Show what the answering node knows of the cluster: its state, the leader,
the revision and Raft indexes, and a table of members (name, incarnation ID,
peer address, voter or nonvoter, leader).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Cluster(cmd.Context())
			if err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(out, st)
			}
			leader := st.Leader
			if leader == "" {
				leader = "(none: no quorum)"
			}
			fmt.Fprintf(out, "answered by %s (%s); leader %s\n", st.Self, st.State, leader)
			fmt.Fprintf(out, "revision %d, commit index %d, applied index %d", st.Revision, st.CommitIndex, st.AppliedIndex)
			if st.ClusterID != "" {
				fmt.Fprintf(out, ", cluster %s", st.ClusterID)
			}
			fmt.Fprint(out, "\n")
			if st.Quorum.State != "" && st.Quorum.State != "ok" {
				fmt.Fprintf(out, "quorum: %s", st.Quorum.State)
				if len(st.Quorum.Silent) > 0 {
					fmt.Fprintf(out, "; silent voters %v", st.Quorum.Silent)
				}
				if len(st.Quorum.Gone) > 0 {
					fmt.Fprintf(out, "; gone %v", st.Quorum.Gone)
				}
				fmt.Fprintf(out, "; %.0fs without a leader\n", st.Quorum.WithoutLeaderSeconds)
			}
			for _, f := range st.Forks {
				fmt.Fprintf(out, "FORK: peer %s is in cluster %s (%d voters)\n", f.Peer, f.ClusterID, f.Voters)
			}
			fmt.Fprint(out, "\n")
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tADDRESS\tSUFFRAGE\tLEADER")
			for _, m := range st.Members {
				mark := ""
				if m.Leader {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Address, m.Suffrage, mark)
			}
			return tw.Flush()
		},
	}
	co.addFlags(cmd)
	outputFlag(cmd, &output, "a summary and a table of members")
	cmd.AddCommand(newReformCommand())
	return cmd
}

func newReformCommand() *cobra.Command {
	var (
		co      clientOptions
		confirm string
	)
	cmd := &cobra.Command{
		Use:   "reform --confirm <cluster-id>",
		Short: "Force a leaderless cluster to re-form empty (loses every key)",
		Long: `When a majority of the voters stay silent, the survivors wait for them
forever: silence may be a partition or a paused machine, and re-forming then
would split the cluster. If you know the silent voters are dead for good (their
nodes are gone and their pods will not be rescheduled), reform tells the
answering node and every leaderless member of its cluster to empty themselves
and form a new cluster from the replicas that answer.

Every key is lost. If the silent voters are in fact alive behind a partition,
two clusters exist until the partition heals and fork detection makes the
smaller one give way. The user needs read/write on every key; --confirm must
be the cluster_id that "ephemeral-store cluster" shows.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if confirm == "" {
				return usageErrorf("reform: --confirm <cluster-id> is required: the cluster_id that \"ephemeral-store cluster\" shows")
			}
			if len(co.endpoints) != 1 {
				return usageErrorf("reform: give exactly one --endpoints, the node to re-form through (got %d)", len(co.endpoints))
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Reform(cmd.Context(), confirm)
			if err != nil {
				return fmt.Errorf("reform: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-formed: %s now in cluster %s (state %s)\n", st.Self, st.ClusterID, st.State)
			return nil
		},
	}
	co.addFlags(cmd)
	cmd.Flags().StringVar(&confirm, "confirm", "", "the cluster_id of the leaderless cluster (from \"ephemeral-store cluster\"); required")
	return cmd
}
