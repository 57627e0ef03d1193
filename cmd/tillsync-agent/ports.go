package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/tillsync/tillsync/agent/scanner"
)

func portsCmd() *cobra.Command { return newPortsCmd(scanner.ListPorts) }

// portJSON is one line of `ports --json`.
type portJSON struct {
	scanner.PortInfo
	// Vendor is the maker's name from the scanner package's table, when known.
	Vendor string `json:"vendor,omitempty"`
	// Bridge marks a USB-serial bridge chip (an adapter, or a device built on one).
	Bridge bool `json:"bridge,omitempty"`
}

// newPortsCmd builds `ports` over list, which tests replace.
func newPortsCmd(list func() ([]scanner.PortInfo, error)) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "ports",
		Short: "List serial ports, with the USB identity of each (to find the scanner)",
		Long: `List the serial ports of this machine with their USB vendor and product ids
(VID:PID), serial number and product name, and the maker's name for common
barcode scanner brands. Ports of USB-serial bridge chips (FTDI, Prolific,
Silicon Labs, WCH) are marked as such: an adapter cable, or a scanner built on one.

A scanner chosen by VID:PID (and serial number) is found again after it is
unplugged, whatever name the OS gives its port then. A scanner set to USB
keyboard (HID) mode has no serial port and is not listed: switch it to USB
serial (CDC / virtual COM) mode with the programming barcode in its manual.`,
		Example: `  tillsync-agent ports
  tillsync-agent ports --json
  tillsync-agent scan-test --usb 0c2e:0b61     # then try the one you found`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ports, err := list()
			if err != nil {
				return fmt.Errorf("cannot list serial ports: %v", err)
			}
			if asJSON {
				return printPortsJSON(c.OutOrStdout(), ports)
			}
			printPorts(c.OutOrStdout(), ports)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}

func printPortsJSON(w io.Writer, ports []scanner.PortInfo) error {
	out := make([]portJSON, 0, len(ports))
	for _, p := range ports {
		j := portJSON{PortInfo: p}
		if v, ok := scanner.LookupVendor(p.VID); ok && p.USB {
			j.Vendor, j.Bridge = v.Name, v.Bridge
		}
		out = append(out, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func printPorts(w io.Writer, ports []scanner.PortInfo) {
	if len(ports) == 0 {
		fmt.Fprintln(w, "No serial ports found. A USB scanner in keyboard (HID) mode has none: switch it to USB serial (CDC / virtual COM) mode.")
		return
	}
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "PORT\tUSB ID\tSERIAL\tVENDOR\tPRODUCT")
	usb := false
	for _, p := range ports {
		id, vendor := "-", "-"
		if p.USB {
			usb = true
			id = p.VID + ":" + p.PID
			if v, ok := scanner.LookupVendor(p.VID); ok {
				vendor = v.Name
			} else if p.Manufacturer != "" {
				vendor = dash(p.Manufacturer)
			}
		}
		fmt.Fprintln(t, strings.Join([]string{p.Name, id, dash(p.SerialNumber), vendor, dash(p.Product)}, "\t"))
	}
	t.Flush()
	if !scanner.USBDetails {
		fmt.Fprintln(w, "\nThis build cannot see USB ids (macOS built without cgo): choose the scanner by port name.")
	} else if usb {
		fmt.Fprintln(w, "\nTry a scanner with: tillsync-agent scan-test --usb VID:PID[:SERIAL]")
	}
}

// dash stands in for an empty cell, and keeps a cell to one line: USB
// strings come from the device and may hold anything.
func dash(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if s == "" {
		return "-"
	}
	return s
}
