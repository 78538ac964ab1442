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
			fmt.Fprint(out, "\n\n")
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
	return cmd
}
