package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/seedfile"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
)

const adminGroup = "admin"

// adminCmds are the commands that administer a running hub over its API.
func adminCmds() []*cobra.Command {
	cmds := []*cobra.Command{
		seedCmd(), coalitionCmd(), partnerCmd(), storeCmd(), terminalCmd(), rulesCmd(), campaignCmd(),
		memberCmd(), flagsCmd(), settlementCmd(), periodCmd(), expireCmd(), verifyCmd(), apiTokenCmd(),
	}
	for _, c := range cmds {
		c.GroupID = adminGroup
	}
	return cmds
}

// parent makes c a command that only groups subcommands: alone it prints
// its help; with an argument that is no subcommand it is a usage mistake
// (cobra would print the help and exit 0).
func parent(c *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		hint := ""
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			hint = fmt.Sprintf("; did you mean %q?", s[0])
		}
		return cli.Usagef("unknown command %q for %q%s (see %s --help)", args[0], c.CommandPath(), hint, c.CommandPath())
	}
	c.AddCommand(subs...)
	return c
}

// checkID refuses an id the hub would refuse, before asking it.
func checkID(what, id string) error {
	if !protocol.ValidID(id) {
		return cli.Usagef("%s %q: ids are 1-%d characters of A-Z a-z 0-9 . _ -", what, id, protocol.MaxIDLen)
	}
	return nil
}

// readFile reads a YAML or JSON file of at most seedfile.MaxBytes.
func readFile(what, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", what, path, rootErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, seedfile.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", what, path, rootErr(err))
	}
	if len(data) > seedfile.MaxBytes {
		return nil, fmt.Errorf("%s %s: larger than %d bytes", what, path, seedfile.MaxBytes)
	}
	return data, nil
}

// parseWhen reads an RFC 3339 time or a day (YYYY-MM-DD, midnight UTC).
func parseWhen(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, cli.Usagef("%s %q: want a time (2026-12-01T09:00:00Z, RFC 3339) or a day (2026-12-01, midnight UTC)", flag, s)
}

// parseDay reads YYYY-MM-DD.
func parseDay(flag, s string) error {
	if s == "" {
		return cli.Usagef("%s is required (YYYY-MM-DD)", flag)
	}
	if _, err := ledger.ParseDay(s); err != nil {
		return cli.Usagef("%s %q: want a day, YYYY-MM-DD", flag, s)
	}
	return nil
}

func seedCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:   "seed FILE",
		Short: "Load a seed file (coalition, partners, stores, terminals, rules) into the hub",
		Long: `Load a seed file into a running hub: the coalition's settings, its partners
with their stores, terminals and earn rules, in YAML or JSON with the API's
field names (see cmd/tillsync-sim/demo-coalition.yaml for a documented one).

Loading the same file again changes nothing. Partners, stores and terminals
are created or renamed; a partner's rules become a new version, in force now,
only when they differ from the version in force. The file is checked before it
is sent: an unknown or misspelt key is refused with its line.`,
		Example: `  tillsync-hub seed demo-coalition.yaml
  tillsync-hub seed --hub http://hub.example:8080 coalition.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			data, err := readFile("seed", args[0])
			if err != nil {
				return err
			}
			if _, err := seedfile.Parse(data); err != nil {
				return fmt.Errorf("seed %s: %w", args[0], err)
			}
			var rep ledger.SeedReport
			raw, err := cl.call("POST", "/v1/seed", data, &rep)
			if err != nil {
				return fmt.Errorf("seed %s: %w", args[0], err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			if rep == (ledger.SeedReport{}) {
				fmt.Fprintf(c.OutOrStdout(), "Seed %s loaded: nothing changed.\n", args[0])
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "Seed %s loaded: %s, %s, %s and %s added or changed.\n",
				args[0], count(rep.Partners, "partner"), count(rep.Stores, "store"), count(rep.Terminals, "terminal"), count(rep.Rules, "rule version"))
			return nil
		},
	}
	f.add(c, true)
	return c
}

func coalitionCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "coalition",
		Short: "Show or change the coalition's settings",
		Long: `Show or change the coalition's own settings: its name, currency, what a
point is worth when partners settle, how long points live and how long a hold
reserves them.`,
	}
	return parent(c, coalitionShowCmd(), coalitionSetCmd())
}

func printCoalition(c *cobra.Command, co ledger.Coalition) {
	t := newTable(c)
	t.row("name", dash(co.Name))
	t.row("currency", dash(co.Currency))
	pv := "-"
	if co.PointValue != "" {
		pv = co.PointValue + " " + co.Currency + " a point"
	}
	t.row("point value", pv)
	exp := "never"
	if co.ExpiryMonths > 0 {
		exp = fmt.Sprintf("%s after the month they were earned in", count(co.ExpiryMonths, "month"))
	}
	t.row("points expire", exp)
	hold := fmt.Sprintf("%d minutes", co.HoldMinutes)
	if co.HoldMinutes == 0 {
		hold = fmt.Sprintf("%d minutes (the default)", ledger.DefaultHoldMinutes)
	}
	t.row("holds last", hold)
	wait := count(co.ReturnWaitDays, "day")
	if co.ReturnWaitDays == 0 {
		wait = fmt.Sprintf("%d days (the default)", ledger.DefaultReturnWaitDays)
	}
	t.row("returns wait for their sale", wait)
	t.flush()
}

func coalitionShowCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:     "show",
		Short:   "Show the coalition's settings",
		Example: `  tillsync-hub coalition show`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var co ledger.Coalition
			_, done, err := f.show(c, "/v1/coalition", &co)
			if done || err != nil {
				return err
			}
			if co == (ledger.Coalition{}) {
				fmt.Fprintln(c.OutOrStdout(), "The coalition has no settings yet; set them with `tillsync-hub coalition set` or a seed.")
				return nil
			}
			printCoalition(c, co)
			return nil
		},
	}
	f.add(c, true)
	return c
}

func coalitionSetCmd() *cobra.Command {
	var (
		f                         apiFlags
		name, currency, pointVal  string
		expiryMonths, holdMinutes int
		returnWaitDays            int
	)
	c := &cobra.Command{
		Use:   "set",
		Short: "Change the coalition's settings",
		Long: `Change the coalition's settings. Flags not given keep their current value.
The currency cannot change once a partner has earn rules.`,
		Example: `  tillsync-hub coalition set --name "Demo Coalition" --currency EUR --point-value 0.01
  tillsync-hub coalition set --expiry-months 36 --hold-minutes 20 --return-wait-days 14`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fl := c.Flags()
			if !fl.Changed("name") && !fl.Changed("currency") && !fl.Changed("point-value") && !fl.Changed("expiry-months") && !fl.Changed("hold-minutes") && !fl.Changed("return-wait-days") {
				return cli.Usagef("nothing to set: give at least one of --name, --currency, --point-value, --expiry-months, --hold-minutes, --return-wait-days")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var co ledger.Coalition
			if _, err := cl.get("/v1/coalition", &co); err != nil {
				return err
			}
			if fl.Changed("name") {
				co.Name = name
			}
			if fl.Changed("currency") {
				co.Currency = currency
			}
			if fl.Changed("point-value") {
				co.PointValue = pointVal
			}
			if fl.Changed("expiry-months") {
				co.ExpiryMonths = expiryMonths
			}
			if fl.Changed("hold-minutes") {
				co.HoldMinutes = holdMinutes
			}
			if fl.Changed("return-wait-days") {
				co.ReturnWaitDays = returnWaitDays
			}
			raw, err := cl.call("PUT", "/v1/coalition", co, &co)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(c, raw)
			}
			printCoalition(c, co)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "the coalition's name, for people")
	c.Flags().StringVar(&currency, "currency", "", "ISO 4217 currency of every amount and of settlement, e.g. EUR")
	c.Flags().StringVar(&pointVal, "point-value", "", `what one point is worth in the currency's major unit, a decimal ("0.01")`)
	c.Flags().IntVar(&expiryMonths, "expiry-months", 0, "how many months points live after the month they were earned (0: never expire)")
	c.Flags().IntVar(&holdMinutes, "hold-minutes", 0, "how long a hold reserves points (0: the default, 15)")
	c.Flags().IntVar(&returnWaitDays, "return-wait-days", 0, "how long a return whose sale has not reached the hub is held before it is refused (0: the default, 7)")
	f.add(c, true)
	return c
}

func partnerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "partner",
		Short: "Add or list the coalition's partner brands",
	}
	return parent(c, partnerAddCmd(), partnerListCmd())
}

func partnerAddCmd() *cobra.Command {
	var (
		f    apiFlags
		name string
	)
	c := &cobra.Command{
		Use:   "add ID",
		Short: "Add a partner brand, or rename one",
		Long: `Add a partner brand to the coalition, or rename one. Without --name an
existing partner keeps its name.`,
		Example: `  tillsync-hub partner add greencross --name "GreenCross Pharmacy"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			id := args[0]
			if err := checkID("partner", id); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			if !c.Flags().Changed("name") {
				var list struct {
					Partners []ledger.Partner `json:"partners"`
				}
				if _, err := cl.get("/v1/partners", &list); err != nil {
					return err
				}
				for _, p := range list.Partners {
					if p.ID == id {
						name = p.Name
					}
				}
			}
			var p ledger.Partner
			raw, err := cl.call("PUT", "/v1/partners/"+id, httpapi.PartnerBody{Name: name}, &p)
			if err != nil {
				return fmt.Errorf("partner %s: %w", id, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "Partner %s recorded%s.\n", p.ID, named(p.Name))
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "the partner's name, for people")
	f.add(c, true)
	return c
}

func named(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", name)
}

func partnerListCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the partner brands",
		Example: `  tillsync-hub partner list`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var list struct {
				Partners []ledger.Partner `json:"partners"`
			}
			cl, done, err := f.show(c, "/v1/partners", &list)
			if done || err != nil {
				return err
			}
			if len(list.Partners) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "No partners yet; add one with `tillsync-hub partner add` or a seed.")
				return nil
			}
			var stores struct {
				Stores []httpapi.Store `json:"stores"`
			}
			if _, err := cl.get("/v1/stores", &stores); err != nil {
				return err
			}
			count := map[string]int{}
			for _, s := range stores.Stores {
				count[s.Partner]++
			}
			t := newTable(c, "PARTNER", "NAME", "STORES", "SINCE")
			for _, p := range list.Partners {
				t.row(p.ID, dash(p.Name), strconv.Itoa(count[p.ID]), when(p.CreatedAt))
			}
			t.flush()
			return nil
		},
	}
	f.add(c, true)
	return c
}

func storeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "store",
		Short: "Register or list stores",
	}
	return parent(c, storeAddCmd(), storeListCmd())
}

func storeAddCmd() *cobra.Command {
	var (
		f             apiFlags
		partner, name string
	)
	c := &cobra.Command{
		Use:   "add ID --partner P",
		Short: "Register a store with its partner, or rename one",
		Long: `Register a store with the partner brand it trades as, or rename one. Until
a store is registered, the hub holds its tills' transactions back. A store
with transactions cannot move to another partner. Without --name an existing
store keeps its name.`,
		Example: `  tillsync-hub store add gc-berlin-01 --partner greencross --name "GreenCross Berlin Mitte"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			id := args[0]
			if err := checkID("store", id); err != nil {
				return err
			}
			if partner == "" {
				return cli.Usagef("--partner is required: the brand store %s trades as", id)
			}
			if err := checkID("--partner", partner); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			if !c.Flags().Changed("name") {
				stores, err := listStores(cl)
				if err != nil {
					return err
				}
				for _, s := range stores {
					if s.Store == id {
						name = s.Name
					}
				}
			}
			var s ledger.StoreInfo
			raw, err := cl.call("PUT", "/v1/stores/"+id, httpapi.StoreBody{Partner: partner, Name: name}, &s)
			if err != nil {
				return fmt.Errorf("store %s: %w", id, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "Store %s%s registered with partner %s.\n", s.ID, named(s.Name), s.Partner)
			return nil
		},
	}
	c.Flags().StringVar(&partner, "partner", "", "the partner brand the store trades as (required)")
	c.Flags().StringVar(&name, "name", "", "the store's name, for people")
	f.add(c, true)
	return c
}

func listStores(cl *client) ([]httpapi.Store, error) {
	var out struct {
		Stores []httpapi.Store `json:"stores"`
	}
	_, err := cl.get("/v1/stores", &out)
	return out.Stores, err
}

func storeListCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List the stores: registered, and any whose tills sent transactions",
		Long: `List every registered store and every store whose tills sent transactions,
with its partner, how many terminals it has, and whether it is in sync (no
till has transactions queued). A store shown as not registered has its
transactions held until it is registered with "store add".`,
		Example: `  tillsync-hub store list`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var out struct {
				Stores []httpapi.Store `json:"stores"`
			}
			_, done, err := f.show(c, "/v1/stores", &out)
			if done || err != nil {
				return err
			}
			if len(out.Stores) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "No stores yet; register one with `tillsync-hub store add` or a seed.")
				return nil
			}
			t := newTable(c, "STORE", "PARTNER", "NAME", "REGISTERED", "TERMINALS", "IN SYNC", "BACKLOG")
			for _, s := range out.Stores {
				reg := "yes"
				if !s.Registered {
					reg = "NO (held)"
				}
				t.row(s.Store, dash(s.Partner), dash(s.Name), reg, strconv.Itoa(len(s.Terminals)), yesNo(s.InSync), strconv.FormatInt(s.Backlog, 10))
			}
			t.flush()
			return nil
		},
	}
	f.add(c, true)
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// enrollmentState is a terminal's ENROLLED column in terminal list.
func enrollmentState(e ledger.Enrollment, now time.Time) string {
	switch {
	case !e.RevokedAt.IsZero() && now.Before(e.TokenExpires):
		return "revoked " + when(e.RevokedAt) + "; token until " + when(e.TokenExpires)
	case !e.RevokedAt.IsZero():
		return "revoked " + when(e.RevokedAt)
	case !e.EnrolledAt.IsZero():
		return "yes, " + when(e.EnrolledAt)
	case e.TokenExpires.IsZero():
		return "no"
	case !now.Before(e.TokenExpires):
		return "no (token expired)"
	}
	return "token until " + when(e.TokenExpires)
}

func terminalCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "terminal",
		Short: "Register or list terminals (tills)",
	}
	return parent(c, terminalAddCmd(), terminalTokenCmd(), terminalRevokeCmd(), terminalListCmd())
}

func terminalAddCmd() *cobra.Command {
	var (
		f               apiFlags
		store, terminal string
		noToken         bool
		expiresIn       time.Duration
	)
	c := &cobra.Command{
		Use:   "add --store S --terminal T",
		Short: "Register a terminal of a registered store and print its one-time enrollment token",
		Long: `Register a terminal (till) of a registered store, and print a one-time
enrollment token for it (unless --no-token): the till's installer runs
"tillsync-agent enroll --token …" with it, once, before it expires.
Registering a terminal twice is harmless; each run prints a new token, which
replaces the previous one.`,
		Example: `  tillsync-hub terminal add --store gc-berlin-01 --terminal till-3
  tillsync-hub terminal add --store gc-berlin-01 --terminal till-3 --expires-in 72h`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if store == "" || terminal == "" {
				return cli.Usagef("--store and --terminal are both required")
			}
			if err := checkID("--store", store); err != nil {
				return err
			}
			if err := checkID("--terminal", terminal); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			raw, err := cl.call("PUT", "/v1/stores/"+store+"/terminals/"+terminal, nil, nil)
			if err != nil {
				return fmt.Errorf("terminal %s/%s: %w", store, terminal, err)
			}
			if noToken {
				if f.json {
					return printJSON(c, raw)
				}
				fmt.Fprintf(c.OutOrStdout(), "Terminal %s of store %s registered.\n", terminal, store)
				return nil
			}
			return printEnrollmentToken(c, cl, f.json, store, terminal, expiresIn, "registered")
		},
	}
	c.Flags().StringVar(&store, "store", "", "the registered store the terminal belongs to (required)")
	c.Flags().StringVar(&terminal, "terminal", "", "the terminal's id (required)")
	c.Flags().BoolVar(&noToken, "no-token", false, "register only; issue the enrollment token later with terminal token")
	c.Flags().DurationVar(&expiresIn, "expires-in", 24*time.Hour, "how long the enrollment token is valid (1m to 720h)")
	f.add(c, true)
	return c
}

// printEnrollmentToken issues a terminal's enrollment token and prints it
// with what to do with it.
func printEnrollmentToken(c *cobra.Command, cl *client, asJSON bool, store, terminal string, expiresIn time.Duration, done string) error {
	var tok httpapi.EnrollmentTokenAnswer
	raw, err := cl.call("POST", "/v1/stores/"+store+"/terminals/"+terminal+"/enrollment-token", map[string]string{"expires_in": expiresIn.String()}, &tok)
	if err != nil {
		return fmt.Errorf("enrollment token for %s/%s: %w", store, terminal, err)
	}
	if asJSON {
		return printJSON(c, raw)
	}
	out := c.OutOrStdout()
	fmt.Fprintf(out, "Terminal %s of store %s %s. Its one-time enrollment token, valid until %s:\n\n  %s\n\n", terminal, store, done, tok.ExpiresAt.Format("2006-01-02 15:04Z"), tok.Token)
	fmt.Fprintf(out, "On the till: tillsync-agent enroll --hub https://HUB:PORT --token %s\n(HUB:PORT is the hub's --https-listen; plain http only from the hub's own machine)\n", tok.Token)
	return nil
}

func terminalTokenCmd() *cobra.Command {
	var (
		f               apiFlags
		store, terminal string
		expiresIn       time.Duration
	)
	c := &cobra.Command{
		Use:     "token --store S --terminal T",
		Short:   "Issue a new one-time enrollment token for a registered terminal",
		Long:    `Issue a new one-time enrollment token for a registered terminal; it replaces one still pending. Needed to enroll a till again after a revoke or a lost token.`,
		Example: `  tillsync-hub terminal token --store gc-berlin-01 --terminal till-3`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := terminalFlags(store, terminal); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			return printEnrollmentToken(c, cl, f.json, store, terminal, expiresIn, "may enroll")
		},
	}
	c.Flags().StringVar(&store, "store", "", "the terminal's store (required)")
	c.Flags().StringVar(&terminal, "terminal", "", "the terminal's id (required)")
	c.Flags().DurationVar(&expiresIn, "expires-in", 24*time.Hour, "how long the token is valid (1m to 720h)")
	f.add(c, true)
	return c
}

func terminalRevokeCmd() *cobra.Command {
	var (
		f               apiFlags
		store, terminal string
	)
	c := &cobra.Command{
		Use:   "revoke --store S --terminal T",
		Short: "Revoke a terminal's credentials: disconnected at once, refused from then on",
		Long: `Revoke a terminal's credentials (and any pending enrollment token). A
connected till is disconnected at once and cannot connect again; what it
still holds stays in its outbox. Enrolling it again needs a new token
(terminal token).`,
		Example: `  tillsync-hub terminal revoke --store gc-berlin-01 --terminal till-3`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := terminalFlags(store, terminal); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			raw, err := cl.call("POST", "/v1/stores/"+store+"/terminals/"+terminal+"/revoke", nil, nil)
			if err != nil {
				return fmt.Errorf("revoke %s/%s: %w", store, terminal, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "Terminal %s of store %s revoked: disconnected, and refused from now on.\n", terminal, store)
			return nil
		},
	}
	c.Flags().StringVar(&store, "store", "", "the terminal's store (required)")
	c.Flags().StringVar(&terminal, "terminal", "", "the terminal's id (required)")
	f.add(c, true)
	return c
}

// terminalFlags checks --store and --terminal.
func terminalFlags(store, terminal string) error {
	if store == "" || terminal == "" {
		return cli.Usagef("--store and --terminal are both required")
	}
	if err := checkID("--store", store); err != nil {
		return err
	}
	return checkID("--terminal", terminal)
}

func terminalListCmd() *cobra.Command {
	var (
		f     apiFlags
		store string
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List terminals: registered, and any that sent transactions",
		Long: `List every terminal the hub knows: registered ones and any that sent
transactions, whether it enrolled (yes; revoked; a token pending until when
it expires; no), when the hub last heard from it and how many transactions
its outbox held then (backlog). --json prints GET /v1/stores; the
enrollment states are GET /v1/enrollments.`,
		Example: `  tillsync-hub terminal list
  tillsync-hub terminal list --store gc-berlin-01`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if store != "" {
				if err := checkID("--store", store); err != nil {
					return err
				}
			}
			var out struct {
				Stores []httpapi.Store `json:"stores"`
			}
			cl, done, err := f.show(c, "/v1/stores", &out)
			if done || err != nil {
				return err
			}
			var enr struct {
				Enrollments []ledger.Enrollment `json:"enrollments"`
			}
			if _, err := cl.get("/v1/enrollments", &enr); err != nil {
				return err
			}
			enrolled := make(map[string]ledger.Enrollment, len(enr.Enrollments))
			for _, e := range enr.Enrollments {
				enrolled[e.Store+"/"+e.Terminal] = e
			}
			now := time.Now()
			t := newTable(c, "STORE", "TERMINAL", "REGISTERED", "ENROLLED", "LAST SEEN", "BACKLOG", "IN SYNC", "APPLIED")
			n := 0
			for _, s := range out.Stores {
				if store != "" && s.Store != store {
					continue
				}
				for _, tm := range s.Terminals {
					n++
					seen := ago(tm.LastSeen, now)
					if tm.NeverSeen {
						seen = "never"
					} else if tm.Quiet {
						seen += " (quiet)"
					}
					t.row(tm.Store, tm.Terminal.Terminal, yesNo(tm.Registered), enrollmentState(enrolled[tm.Store+"/"+tm.Terminal.Terminal], now), seen, strconv.FormatInt(tm.Backlog, 10), yesNo(tm.InSync), strconv.FormatInt(tm.Applied, 10))
				}
			}
			if n == 0 {
				fmt.Fprintln(c.OutOrStdout(), "No terminals yet; register one with `tillsync-hub terminal add` or a seed.")
				return nil
			}
			t.flush()
			return nil
		},
	}
	c.Flags().StringVar(&store, "store", "", "only this store's terminals")
	f.add(c, true)
	return c
}
