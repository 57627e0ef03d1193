package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/internal/cli"
)

func apiTokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "apitoken",
		Short: "Make, list or revoke the tokens of the hub's HTTP API",
		Long: `Make, list or revoke the tokens of the hub's HTTP API. Every request to the
API but an enrollment and GET /healthz carries one, with a role:

  operator   everything
  read-only  every GET, no changes
  partner    one partner's own stores, terminals and settlement lines and the
             hub's anonymous counts, read only; never a member id

The hub makes the first operator token at its first start, in operator.token
in its data dir. These commands need an operator token.`,
	}
	return parent(c, apiTokenAddCmd(), apiTokenListCmd(), apiTokenRevokeCmd())
}

func roleNames() string {
	var names []string
	for _, r := range ledger.Roles {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

func apiTokenAddCmd() *cobra.Command {
	var (
		f                   apiFlags
		role, partner, name string
	)
	c := &cobra.Command{
		Use:   "add --role operator|partner|read-only [--partner P] [--name N]",
		Short: "Make an API token with a role and print it, once",
		Long: `Make an API token with a role and print it. It is shown this once: the hub
keeps only a hash of it. A partner token speaks for the partner --partner
names; --name says, in apitoken list, who holds the token.`,
		Example: `  tillsync-hub apitoken add --role read-only --name "dashboard"
  tillsync-hub apitoken add --role partner --partner greencross --name "GreenCross finance"
  tillsync-hub apitoken add --role operator --name "ops laptop" --json | jq -r .token > ops.token`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r := ledger.Role(role)
			switch {
			case role == "":
				return cli.Usagef("--role is required: %s", roleNames())
			case !slices.Contains(ledger.Roles, r):
				return cli.Usagef("--role %q: want %s", role, roleNames())
			case r == ledger.RolePartner && partner == "":
				return cli.Usagef("--partner is required with --role partner: the partner the token speaks for")
			case r != ledger.RolePartner && partner != "":
				return cli.Usagef("--partner goes with --role partner only; a %s token sees every partner", role)
			}
			if partner != "" {
				if err := checkID("--partner", partner); err != nil {
					return err
				}
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var made httpapi.NewAPIToken
			raw, err := cl.call("POST", "/v1/api-tokens", httpapi.APITokenBody{Role: r, Partner: partner, Name: name}, &made)
			if err != nil {
				return fmt.Errorf("apitoken add: %w", err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			out := c.OutOrStdout()
			who := string(made.APIToken.Role)
			if made.APIToken.Partner != "" {
				who += " of partner " + made.APIToken.Partner
			}
			fmt.Fprintf(out, "API token %s made, role %s%s. It is shown this once (the hub keeps only a hash); keep it secret:\n\n  %s\n\n",
				made.APIToken.ID, who, named(made.APIToken.Name), made.Token)
			fmt.Fprintf(out, "Send it as Authorization: Bearer <token>; the admin commands take it from a file with --token-file or from $%s.\n", tokenEnv)
			return nil
		},
	}
	c.Flags().StringVar(&role, "role", "", "what the token may do: "+roleNames()+" (required)")
	c.Flags().StringVar(&partner, "partner", "", "the partner a partner token speaks for (required with --role partner)")
	c.Flags().StringVar(&name, "name", "", "who or what holds the token, for apitoken list")
	f.add(c, true)
	return c
}

func apiTokenListCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List the API tokens: id, name, role, partner, made, last used, revoked",
		Long: `List every API token, revoked ones too, oldest first: its id (the middle part
of the token, never the secret), name, role, partner, when it was made, when
it was last used (to within a minute) and when it was revoked.`,
		Example: `  tillsync-hub apitoken list`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var out struct {
				APITokens []ledger.APIToken `json:"api_tokens"`
			}
			_, done, err := f.show(c, "/v1/api-tokens", &out)
			if done || err != nil {
				return err
			}
			if len(out.APITokens) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "No API tokens.")
				return nil
			}
			now := time.Now()
			t := newTable(c, "ID", "NAME", "ROLE", "PARTNER", "CREATED", "LAST USED", "REVOKED")
			for _, tk := range out.APITokens {
				t.row(tk.ID, dash(tk.Name), string(tk.Role), dash(tk.Partner), when(tk.CreatedAt), ago(tk.LastUsed, now), when(tk.RevokedAt))
			}
			t.flush()
			return nil
		},
	}
	f.add(c, true)
	return c
}

func apiTokenRevokeCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token: refused from now on",
		Long: `Revoke an API token by its id (apitoken list shows them): every request with
it is refused from then on, for good. Revoking every operator token locks the
admin commands out until the hub's next start, which makes a new one in
operator.token.`,
		Example: `  tillsync-hub apitoken revoke k3Xa9_-QbT2m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			id := args[0]
			if err := checkID("token id", id); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var tk ledger.APIToken
			raw, err := cl.call("POST", "/v1/api-tokens/"+id+"/revoke", nil, &tk)
			if err != nil {
				return fmt.Errorf("apitoken revoke %s: %w", id, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "API token %s (role %s%s) revoked at %s: refused from now on.\n", tk.ID, tk.Role, named(tk.Name), when(tk.RevokedAt))
			return nil
		},
	}
	f.add(c, true)
	return c
}
