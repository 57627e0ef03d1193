package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillsync/tillsync/hub"
	"github.com/tillsync/tillsync/hub/httpapi"
	"github.com/tillsync/tillsync/hub/ledger"
	"github.com/tillsync/tillsync/hub/seedfile"
	"github.com/tillsync/tillsync/internal/cli"
	"github.com/tillsync/tillsync/protocol"
)

func rulesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "rules",
		Short: "Show or set a partner's earn rules",
		Long: `Show or set a partner's earn rules. Rules are versioned: a change is a new
version, in force from its effective time for transactions created from then
on; versions are never edited. The hub sends every store's tills the versions
in force and scheduled, so a till quotes offline what the hub books.`,
	}
	return parent(c, rulesShowCmd(), rulesSetCmd())
}

func rulesShowCmd() *cobra.Command {
	var (
		f       apiFlags
		partner string
	)
	c := &cobra.Command{
		Use:     "show --partner P",
		Short:   "Show every version of a partner's earn rules",
		Example: `  tillsync-hub rules show --partner greencross`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if partner == "" {
				return cli.Usagef("--partner is required")
			}
			if err := checkID("--partner", partner); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var rules httpapi.Rules
			raw, err := cl.get("/v1/partners/"+partner+"/rules", &rules)
			if err != nil {
				return fmt.Errorf("rules of %s: %w", partner, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			printRules(c, rules)
			return nil
		},
	}
	c.Flags().StringVar(&partner, "partner", "", "the partner brand (required)")
	f.add(c, true)
	return c
}

func printRules(c *cobra.Command, rules httpapi.Rules) {
	out := c.OutOrStdout()
	if len(rules.Versions) == 0 {
		fmt.Fprintf(out, "Partner %s has no earn rules yet; set them with `tillsync-hub rules set` or a seed.\n", rules.Partner)
		return
	}
	fmt.Fprintf(out, "Partner %s: %s, version %d in force.\n", rules.Partner, count(len(rules.Versions), "rule version"), rules.InForce)
	for _, rs := range rules.Versions {
		state := "superseded"
		switch {
		case rs.Version == rules.InForce:
			state = "IN FORCE"
		case rs.Version > rules.InForce:
			state = "scheduled"
		}
		fmt.Fprintf(out, "\nVersion %d (%s), effective from %s\n", rs.Version, state, when(rs.EffectiveFrom))
		t := newTable(c)
		rounding := rs.Rounding
		if rounding == "" {
			rounding = protocol.RoundDown
		}
		t.row("  rate", fmt.Sprintf("%s per %s %s, rounded %s", count(int(rs.Points), "point"), protocol.FormatMinor(rs.Per, rs.Currency), rs.Currency, rounding))
		t.row("  categories", multipliers(rs.Categories))
		t.row("  skus", multipliers(rs.SKUs))
		if len(rs.Campaigns) == 0 {
			t.row("  campaigns", "-")
		}
		for i, cp := range rs.Campaigns {
			label := ""
			if i == 0 {
				label = "  campaigns"
			}
			t.row(label, campaignLine(cp, rs.Currency))
		}
		bonus := "-"
		if rs.NewPartnerBonus > 0 {
			bonus = fmt.Sprintf("%d points on a member's first earn here after earning elsewhere", rs.NewPartnerBonus)
		}
		t.row("  new-partner bonus", bonus)
		t.flush()
	}
}

func multipliers(m map[string]protocol.Multiplier) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " x" + string(m[k])
	}
	return strings.Join(parts, ", ")
}

func campaignLine(cp protocol.Campaign, currency string) string {
	var what []string
	if cp.Multiplier != "" {
		what = append(what, "x"+string(cp.Multiplier))
	}
	if cp.Bonus != 0 {
		what = append(what, fmt.Sprintf("+%d points", cp.Bonus))
	}
	if cp.MinAmount > 0 {
		what = append(what, "from "+protocol.FormatMinor(cp.MinAmount, currency)+" "+currency)
	}
	s := fmt.Sprintf("%s: %s, %s to %s", cp.ID, strings.Join(what, " "), when(cp.From), when(cp.To))
	if cp.Name != "" {
		s += fmt.Sprintf(" (%s)", cp.Name)
	}
	return s
}

func rulesSetCmd() *cobra.Command {
	var (
		f                    apiFlags
		partner, file, effec string
	)
	c := &cobra.Command{
		Use:   "set --partner P --file rules.yaml",
		Short: "Record a new version of a partner's earn rules",
		Long: `Record a new version of a partner's earn rules from a YAML or JSON file with
the fields of a rule set (points, per, rounding, categories, skus, campaigns,
new_partner_bonus; the currency defaults to the coalition's). It is in force
from --effective-from (default: now); a time in the past is refused, because
tills may already have quoted with the version in force.

  points: 1          # points earned ...
  per: 100           # ... per this many minor units (1.00 EUR)
  rounding: down     # down, nearest or up
  categories: {rx: "0", beauty: "2"}
  skus: {"4006381333931": "3"}`,
		Example: `  tillsync-hub rules set --partner greencross --file greencross-rules.yaml
  tillsync-hub rules set --partner greencross --file rules.json --effective-from 2027-01-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if partner == "" || file == "" {
				return cli.Usagef("--partner and --file are both required")
			}
			if err := checkID("--partner", partner); err != nil {
				return err
			}
			var from time.Time
			if effec != "" {
				var err error
				if from, err = parseWhen("--effective-from", effec); err != nil {
					return err
				}
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			data, err := readFile("--file", file)
			if err != nil {
				return err
			}
			rs, err := seedfile.ParseRules(data)
			if err != nil {
				return fmt.Errorf("--file %s: %w", file, err)
			}
			if !from.IsZero() {
				rs.EffectiveFrom = from
			}
			var out protocol.RuleSet
			raw, err := cl.call("POST", "/v1/partners/"+partner+"/rules", rs, &out)
			if err != nil {
				return fmt.Errorf("rules of %s: %w", partner, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "Rules of %s recorded as version %d, in force from %s.\n", partner, out.Version, when(out.EffectiveFrom))
			return nil
		},
	}
	c.Flags().StringVar(&partner, "partner", "", "the partner brand (required)")
	c.Flags().StringVar(&file, "file", "", "YAML or JSON file with the rule set (required)")
	c.Flags().StringVar(&effec, "effective-from", "", "when the version takes effect, RFC 3339 or YYYY-MM-DD (default: now)")
	f.add(c, true)
	return c
}

func campaignCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "campaign",
		Short: "Add a campaign to a partner's earn rules",
	}
	return parent(c, campaignAddCmd())
}

func campaignAddCmd() *cobra.Command {
	var (
		f                                       apiFlags
		partner, id, name, from, to, multiplier string
		bonus, minAmount                        int64
	)
	c := &cobra.Command{
		Use:   "add --partner P --id ID --from T --to T (--multiplier X | --bonus N)",
		Short: "Add a time-limited earn campaign to a partner's rules",
		Long: `Add a campaign to a partner's earn rules: the hub records a new rules version,
the version in force now plus the campaign, in force from now, and sends it to
the partner's tills. The campaign applies to transactions created in
[--from, --to): a multiplier of the points (campaign multipliers do not stack;
the highest applies) and/or a fixed bonus (bonuses add up), optionally only
from a minimum purchase.`,
		Example: `  tillsync-hub campaign add --partner greencross --id xmas --from 2026-12-10 --to 2026-12-24 --multiplier 2 --name "Double points"
  tillsync-hub campaign add --partner bean-bar --id jan-bonus --from 2027-01-01 --to 2027-02-01 --bonus 20 --min-amount 500`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if partner == "" || id == "" || from == "" || to == "" {
				return cli.Usagef("--partner, --id, --from and --to are all required")
			}
			if err := checkID("--partner", partner); err != nil {
				return err
			}
			if err := checkID("--id", id); err != nil {
				return err
			}
			if multiplier == "" && bonus == 0 {
				return cli.Usagef("give --multiplier or --bonus: a campaign multiplies points or adds a bonus")
			}
			if multiplier != "" {
				if _, err := protocol.Multiplier(multiplier).Scaled(); err != nil {
					return cli.Usagef("--multiplier %q: want a decimal from 0 to %d with at most 4 places, e.g. 2 or 1.5", multiplier, protocol.MaxMultiplier)
				}
			}
			if bonus < 0 || minAmount < 0 {
				return cli.Usagef("--bonus and --min-amount cannot be negative")
			}
			cp := protocol.Campaign{ID: id, Name: name, Multiplier: protocol.Multiplier(multiplier), Bonus: bonus, MinAmount: minAmount}
			var err error
			if cp.From, err = parseWhen("--from", from); err != nil {
				return err
			}
			if cp.To, err = parseWhen("--to", to); err != nil {
				return err
			}
			if !cp.From.Before(cp.To) {
				return cli.Usagef("--to (%s) must be after --from (%s)", to, from)
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var out protocol.RuleSet
			raw, err := cl.call("POST", "/v1/partners/"+partner+"/campaigns", cp, &out)
			if err != nil {
				return fmt.Errorf("campaign %s of %s: %w", id, partner, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "Campaign %s added to %s's rules as version %d, in force from %s.\n", id, partner, out.Version, when(out.EffectiveFrom))
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&partner, "partner", "", "the partner brand (required)")
	fl.StringVar(&id, "id", "", "the campaign's id (required)")
	fl.StringVar(&name, "name", "", "the campaign's name, for receipts and statements")
	fl.StringVar(&from, "from", "", "first instant of the campaign, RFC 3339 or YYYY-MM-DD (midnight UTC) (required)")
	fl.StringVar(&to, "to", "", "end of the campaign, exclusive, RFC 3339 or YYYY-MM-DD (required)")
	fl.StringVar(&multiplier, "multiplier", "", `multiply the points, a decimal ("2", "1.5")`)
	fl.Int64Var(&bonus, "bonus", 0, "add this many points")
	fl.Int64Var(&minAmount, "min-amount", 0, "only for purchases of at least this amount, in minor units (500 = 5.00 EUR)")
	f.add(c, true)
	return c
}

func memberCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "member",
		Short: "Show a member's points, or mint a member QR token",
	}
	return parent(c, memberShowCmd(), memberTokenCmd())
}

func memberTokenCmd() *cobra.Command {
	var (
		f   apiFlags
		ttl time.Duration
	)
	c := &cobra.Command{
		Use:   "token MEMBER",
		Short: "Mint a signed, short-lived member token (the QR code a member app shows)",
		Long: `Mint a member token: the member id, an expiry and a random nonce, signed with
the coalition's key, as a member app shows it in a QR code instead of a card.
Tills verify it offline with the public key the hub pushes in their store's
config, and refuse it once expired or scanned before at the same till.

It prints the token alone, for scripts and QR generators; --json prints the
hub's answer (token, member, expires_at, key_id).`,
		Example: `  tillsync-hub member token M1001
  tillsync-hub member token M1001 --ttl 5m
  qrencode -t ansiutf8 "$(tillsync-hub member token M1001)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			m := args[0]
			if err := checkID("member", m); err != nil {
				return err
			}
			path := "/v1/members/" + m + "/token"
			if c.Flags().Changed("ttl") {
				if ttl < httpapi.MinTokenTTL || ttl > protocol.MaxTokenLifetime {
					return cli.Usagef("--ttl %s: want %s to %s", ttl, httpapi.MinTokenTTL, protocol.MaxTokenLifetime)
				}
				path += "?ttl=" + strconv.Itoa(int(ttl/time.Second))
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var tok httpapi.MemberToken
			raw, err := cl.call("POST", path, nil, &tok)
			if err != nil {
				return fmt.Errorf("member token for %s: %w", m, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintln(c.OutOrStdout(), tok.Token)
			return nil
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", protocol.DefaultTokenTTL, "how long the token lives (10s to 10m)")
	f.add(c, true)
	return c
}

func memberShowCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:   "show MEMBER",
		Short: "Show a member's balance, holds, points by lot and any flag",
		Long: `Show what the hub's ledger says about a member: the balance, the points
reserved by holds and what is available, the points by lot (when earned, at
which partner, when they expire, what is left) and whether the member owes
points (a flag for an operator).`,
		Example: `  tillsync-hub member show M1001`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			m := args[0]
			if err := checkID("member", m); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var v ledger.MemberView
			raw, err := cl.get("/v1/members/"+m, &v)
			if err != nil {
				return fmt.Errorf("member %s: %w", m, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			out := c.OutOrStdout()
			if !v.Known {
				fmt.Fprintf(out, "Member %s is not known to the hub: no transactions yet.\n", m)
				return nil
			}
			t := newTable(c)
			t.row("member", v.Member)
			t.row("balance", strconv.FormatInt(v.Balance, 10))
			t.row("held", strconv.FormatInt(v.Held, 10))
			t.row("available", strconv.FormatInt(v.Available, 10))
			flag := "-"
			if v.Flag != nil {
				flag = fmt.Sprintf("%s since %s (transaction %s): owes %d points", v.Flag.Reason, when(v.Flag.Since), v.Flag.TxID, -v.Flag.Balance)
			}
			t.row("flag", flag)
			t.flush()
			fmt.Fprintln(out)
			if len(v.Lots) == 0 {
				fmt.Fprintln(out, "No points left in any lot.")
			} else {
				t = newTable(c, "LOT", "PARTNER", "EARNED", "EXPIRES", "POINTS", "REMAINING")
				for _, l := range v.Lots {
					exp := when(l.ExpiresAt)
					if l.ExpiresAt.IsZero() {
						exp = "never"
					}
					t.row(l.ID, l.Partner, when(l.EarnedAt), exp, strconv.FormatInt(l.Points, 10), strconv.FormatInt(l.Remaining, 10))
				}
				t.flush()
			}
			if len(v.Holds) > 0 {
				fmt.Fprintln(out)
				t = newTable(c, "HOLD", "STORE", "TERMINAL", "POINTS", "LAPSES")
				for _, h := range v.Holds {
					t.row(h.ID, h.Store, h.Terminal, strconv.FormatInt(h.Points, 10), when(h.ExpiresAt))
				}
				t.flush()
			}
			return nil
		},
	}
	f.add(c, true)
	return c
}

func flagsCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:   "flags",
		Short: "List the members who owe points and the member tokens seen at two stores",
		Long: `List what an operator must look at:

- members whose balance went below zero, through an offline burn or a
  capture after its hold lapsed (overdraft), or a return of points already
  spent (return_after_spend);
- member tokens (QR codes) accepted at tills of two stores: a screenshot
  passed on, or a code read over the member's shoulder.

--json prints {"flags":[…],"token_flags":[…]}: the answers of GET /v1/flags
and GET /v1/token-flags.`,
		Example: `  tillsync-hub flags`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			var out struct {
				Flags []ledger.Flag `json:"flags"`
			}
			var tokens struct {
				TokenFlags []ledger.TokenRecord `json:"token_flags"`
			}
			rawFlags, err := cl.get("/v1/flags", &out)
			if err != nil {
				return err
			}
			rawTokens, err := cl.get("/v1/token-flags", &tokens)
			if err != nil {
				return err
			}
			if f.json {
				var a, b map[string]json.RawMessage
				if json.Unmarshal(rawFlags, &a) != nil || json.Unmarshal(rawTokens, &b) != nil {
					return fmt.Errorf("the hub at %s answered with something unexpected; is --hub the hub's HTTP API?", cl.base)
				}
				raw, err := json.Marshal(struct {
					Flags      json.RawMessage `json:"flags"`
					TokenFlags json.RawMessage `json:"token_flags"`
				}{a["flags"], b["token_flags"]})
				if err != nil {
					return err
				}
				return printJSON(c, raw)
			}
			w := c.OutOrStdout()
			if len(out.Flags) == 0 {
				fmt.Fprintln(w, "No member owes points.")
			} else {
				t := newTable(c, "MEMBER", "REASON", "BALANCE", "TRANSACTION", "SINCE")
				for _, fl := range out.Flags {
					t.row(fl.Member, fl.Reason, strconv.FormatInt(fl.Balance, 10), fl.TxID, when(fl.Since))
				}
				t.flush()
			}
			fmt.Fprintln(w)
			if len(tokens.TokenFlags) == 0 {
				fmt.Fprintln(w, "No member token was accepted at two stores.")
				return nil
			}
			fmt.Fprintln(w, "Member tokens accepted at two stores:")
			t := newTable(c, "MEMBER", "TOKEN", "FIRST", "AT", "THEN", "AT", "SIGHTINGS")
			for _, r := range tokens.TokenFlags {
				then, at := "-", "-"
				if r.Elsewhere != nil {
					then, at = r.Elsewhere.Store+"/"+r.Elsewhere.Terminal, when(r.Elsewhere.At)
				}
				t.row(r.Member, r.Nonce, r.First.Store+"/"+r.First.Terminal, when(r.First.At), then, at, strconv.Itoa(r.Sightings))
			}
			t.flush()
			return nil
		},
	}
	f.add(c, true)
	return c
}

func settlementCmd() *cobra.Command {
	var (
		f        apiFlags
		from, to string
		asCSV    bool
	)
	c := &cobra.Command{
		Use:   "settlement --from YYYY-MM-DD --to YYYY-MM-DD",
		Short: "Show what each partner issued, redeemed and owes for a period",
		Long: `Show the settlement report for the accounting days [--from, --to): per
partner the points issued (earns less returns), redeemed (burns less
reversals), expired, their value at the coalition's point value, and the net:
positive, the partner owes the coalition; negative, the coalition owes the
partner. Transactions that arrived after their period was closed are shown on
restatement lines of the period they belong to. Values are in the
coalition's currency; --csv prints a spreadsheet-ready CSV with a TOTAL row.`,
		Example: `  tillsync-hub settlement --from 2026-11-01 --to 2026-12-01
  tillsync-hub settlement --from 2026-11-01 --to 2026-12-01 --csv > settlement-2026-11.csv`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := parseDay("--from", from); err != nil {
				return err
			}
			if err := parseDay("--to", to); err != nil {
				return err
			}
			if asCSV && f.json {
				return cli.Usagef("--csv and --json exclude each other")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			path := "/v1/settlement?from=" + from + "&to=" + to
			if asCSV {
				data, err := cl.do("GET", path+"&format=csv", nil)
				if err != nil {
					return err
				}
				_, err = c.OutOrStdout().Write(data)
				return err
			}
			var s ledger.Settlement
			raw, err := cl.get(path, &s)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(c, raw)
			}
			out := c.OutOrStdout()
			closed := ""
			if s.Closed {
				closed = ", a closed period"
			}
			fmt.Fprintf(out, "Settlement %s to %s (days from %s up to, not including, %s%s); 1 point = %s %s\n\n",
				s.From, s.To, s.From, s.To, closed, s.PointValue, s.Currency)
			money := func(v int64) string { return protocol.FormatMinor(v, s.Currency) + " " + s.Currency }
			t := newTable(c, "PARTNER", "LINE", "ISSUED", "REDEEMED", "EXPIRED", "ISSUED VALUE", "REDEEMED VALUE", "NET")
			for _, l := range append(s.Lines, s.Total) {
				line := "period"
				switch {
				case l.Restates != "":
					line = "restates " + l.Restates
				case l.Partner == "TOTAL":
					line = ""
				}
				t.row(l.Partner, line, strconv.FormatInt(l.Issued, 10), strconv.FormatInt(l.Redeemed, 10), strconv.FormatInt(l.Expired, 10),
					money(l.IssuedValue), money(l.RedeemedValue), money(l.Net))
			}
			t.flush()
			fmt.Fprintln(out, "\nNET > 0: the partner owes the coalition; NET < 0: the coalition owes the partner.")
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "", "first day of the report, YYYY-MM-DD (required)")
	c.Flags().StringVar(&to, "to", "", "the day after the report's last, YYYY-MM-DD (required)")
	c.Flags().BoolVar(&asCSV, "csv", false, "print CSV (values as decimals in the currency's major unit, with a TOTAL row)")
	f.add(c, true)
	return c
}

func periodCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "period",
		Short: "Close or list settlement periods",
		Long: `Close or list settlement periods. A closed period's report is frozen and
anchored to the journal; transactions created in it that arrive later are
booked in the open period as restatements.`,
	}
	return parent(c, periodCloseCmd(), periodListCmd())
}

func periodCloseCmd() *cobra.Command {
	var (
		f        apiFlags
		from, to string
	)
	c := &cobra.Command{
		Use:   "close --from YYYY-MM-DD --to YYYY-MM-DD",
		Short: "Close the settlement period [--from, --to)",
		Long: `Close the settlement period [--from, --to). --to must not be after today;
--from must be where the last closed period ended, when there is one.`,
		Example: `  tillsync-hub period close --from 2026-10-01 --to 2026-11-01`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := parseDay("--from", from); err != nil {
				return err
			}
			if err := parseDay("--to", to); err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var p ledger.Period
			raw, err := cl.call("POST", "/v1/periods", httpapi.PeriodBody{From: from, To: to}, &p)
			if err != nil {
				return fmt.Errorf("period %s..%s: %w", from, to, err)
			}
			if f.json {
				return printJSON(c, raw)
			}
			fmt.Fprintf(c.OutOrStdout(), "Period %s closed at %s: journal up to entry %d, chain hash %s.\n",
				ledger.PeriodID(p.From, p.To), when(p.ClosedAt), p.JournalSeq, dash(p.ChainHash))
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "", "the period's first day, YYYY-MM-DD (required)")
	c.Flags().StringVar(&to, "to", "", "the day after its last, YYYY-MM-DD (required)")
	f.add(c, true)
	return c
}

func periodListCmd() *cobra.Command {
	var f apiFlags
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the closed settlement periods",
		Example: `  tillsync-hub period list`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var out struct {
				Periods []ledger.Period `json:"periods"`
			}
			_, done, err := f.show(c, "/v1/periods", &out)
			if done || err != nil {
				return err
			}
			if len(out.Periods) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "No closed periods yet.")
				return nil
			}
			t := newTable(c, "PERIOD", "CLOSED AT", "JOURNAL ENTRY", "CHAIN HASH")
			for _, p := range out.Periods {
				t.row(ledger.PeriodID(p.From, p.To), when(p.ClosedAt), strconv.FormatUint(p.JournalSeq, 10), dash(p.ChainHash))
			}
			t.flush()
			return nil
		},
	}
	f.add(c, true)
	return c
}

func expireCmd() *cobra.Command {
	var (
		f    apiFlags
		asOf string
	)
	c := &cobra.Command{
		Use:   "expire",
		Short: "Expire the points whose time has come",
		Long: `Expire every lot of points whose expiry is at or before --as-of (default:
now). The hub does this by itself every hour; running it again changes
nothing. A time after now is refused.`,
		Example: `  tillsync-hub expire
  tillsync-hub expire --as-of 2026-12-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var body httpapi.ExpiryBody
			if asOf != "" {
				t, err := parseWhen("--as-of", asOf)
				if err != nil {
					return err
				}
				body.AsOf = t
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			var rep ledger.ExpiryReport
			raw, err := cl.call("POST", "/v1/expiry", body, &rep)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(c, raw)
			}
			if rep.Lots == 0 && rep.Points == 0 {
				fmt.Fprintf(c.OutOrStdout(), "Nothing to expire as of %s.\n", when(rep.AsOf))
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "Expired %d points of %d members (%d lots) as of %s.\n", rep.Points, rep.Members, rep.Lots, when(rep.AsOf))
			return nil
		},
	}
	c.Flags().StringVar(&asOf, "as-of", "", "expire what expired by then, RFC 3339 or YYYY-MM-DD (default: now)")
	f.add(c, true)
	return c
}

func verifyCmd() *cobra.Command {
	var (
		f       apiFlags
		dataDir string
	)
	c := &cobra.Command{
		Use:   "verify",
		Short: "Replay the whole journal and check the ledger against it",
		Long: `Replay the whole journal and check everything derived from it: every entry
balances, the hash chain holds, every stored balance, lot and settlement total
agrees with the replay, and closed periods still report what they reported.
Prints the entries checked, the chain head and each problem on its own line;
exits 1 when the ledger is not consistent.

By default it asks the running hub (--hub). With --data-dir it opens the
ledger file in that directory itself, read-only: for a hub that is stopped.`,
		Example: `  tillsync-hub verify
  tillsync-hub verify --data-dir ./hub-data`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var rep ledger.VerifyReport
			var raw []byte
			if c.Flags().Changed("data-dir") {
				if c.Flags().Changed("hub") {
					return cli.Usagef("--data-dir and --hub exclude each other: verify either a stopped hub's file or a running hub")
				}
				var err error
				if rep, err = verifyFile(dataDir); err != nil {
					return err
				}
				raw, _ = json.Marshal(httpapi.Verify{VerifyReport: rep, OK: rep.OK()})
			} else {
				cl, err := f.client()
				if err != nil {
					return err
				}
				var v httpapi.Verify
				if raw, err = cl.get("/v1/verify", &v); err != nil {
					return err
				}
				rep = v.VerifyReport
			}
			if f.json {
				if err := printJSON(c, raw); err != nil {
					return err
				}
			} else {
				printVerify(c, rep)
			}
			if !rep.OK() {
				return fmt.Errorf("verify: the ledger is NOT consistent: %s", problemSummary(rep))
			}
			return nil
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", "", "verify the ledger in this data dir directly (the hub must be stopped)")
	f.add(c, true)
	return c
}

// verifyFile opens the ledger in dir read-only and verifies it.
func verifyFile(dir string) (ledger.VerifyReport, error) {
	path := filepath.Join(dir, hub.LedgerFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ledger.VerifyReport{}, fmt.Errorf("no ledger in %s (%s does not exist); check --data-dir", dir, hub.LedgerFile)
		}
		return ledger.VerifyReport{}, fmt.Errorf("ledger %s: %v", path, rootErr(err))
	}
	st, err := ledger.OpenBolt(path, ledger.BoltOptions{ReadOnly: true})
	if errors.Is(err, ledger.ErrLocked) {
		return ledger.VerifyReport{}, fmt.Errorf("ledger %s is in use by a running hub; stop the hub or run verify against it with --hub", path)
	}
	if errors.Is(err, ledger.ErrOldSchema) {
		return ledger.VerifyReport{}, errors.New(oneLine(err.Error()))
	}
	if err != nil {
		return ledger.VerifyReport{}, fmt.Errorf("%v; is --data-dir a hub's data dir?", oneLine(err.Error()))
	}
	defer st.Close()
	rep, err := st.Verify()
	if err != nil {
		return rep, fmt.Errorf("verify %s: %v", path, oneLine(err.Error()))
	}
	return rep, nil
}

func printVerify(c *cobra.Command, rep ledger.VerifyReport) {
	t := newTable(c)
	t.row("entries checked", strconv.Itoa(rep.Entries))
	t.row("accounts", strconv.Itoa(rep.Accounts))
	t.row("chain head", dash(rep.ChainHead))
	t.flush()
	out := c.OutOrStdout()
	if rep.ChainBreak != "" {
		fmt.Fprintf(out, "PROBLEM: hash chain: %s\n", oneLine(rep.ChainBreak))
	}
	for _, seq := range rep.Unbalanced {
		fmt.Fprintf(out, "PROBLEM: journal entry %d does not balance\n", seq)
	}
	for _, m := range rep.Mismatches {
		fmt.Fprintf(out, "PROBLEM: %s\n", oneLine(m))
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(out, "PROBLEM: %s\n", oneLine(p))
	}
	if rep.OK() {
		fmt.Fprintln(out, "OK: every entry balances, the hash chain holds and every stored figure agrees with the journal.")
	}
}

func problemSummary(rep ledger.VerifyReport) string {
	var parts []string
	if rep.ChainBreak != "" {
		parts = append(parts, "the hash chain breaks")
	}
	if n := len(rep.Unbalanced); n > 0 {
		parts = append(parts, fmt.Sprintf("%d unbalanced entries", n))
	}
	if n := len(rep.Mismatches); n > 0 {
		parts = append(parts, fmt.Sprintf("%d balance mismatches", n))
	}
	if n := len(rep.Problems); n > 0 {
		parts = append(parts, fmt.Sprintf("%d other problems", n))
	}
	return strings.Join(parts, ", ") + " (listed on stdout)"
}
