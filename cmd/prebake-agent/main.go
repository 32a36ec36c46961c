// Command prebake-agent joins a prebake node to its cluster early in boot,
// before cloud-init: it reads the node's user-data from a datasource (the
// NoCloud seed, an OpenStack config drive, EC2's IMDSv2 or a local file),
// takes prebake's block out of it, writes the files it carries, claims the
// join with a stamp and starts the join unit. See docs/agent.md.
//
// It links the standard library and prebake's agent packages only (no
// cobra, no registry or signing code): a test keeps it that way and under
// 10 MB.
//
//	prebake-agent [-datasource auto|LIST] [-wait DURATION] [-root DIR] [-no-start]
//	prebake-agent check USER-DATA     # validate a rendered user-data file
//	prebake-agent version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/prebake/prebake/agent"
	"github.com/prebake/prebake/agent/datasource"
)

// Version of the agent; the catalog recipes' agent variable names the
// release that ships this source (a test keeps them equal).
const Version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:]))
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "prebake-agent: "+format+"\n", a...)
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Println("prebake-agent", Version)
			return 0
		case "check":
			return check(args[1:])
		}
	}
	fl := flag.NewFlagSet("prebake-agent", flag.ContinueOnError)
	ds := fl.String("datasource", "auto", "where user-data comes from, tried in order: comma-separated nocloud, configdrive, ec2[=URL], file=PATH, local (file=/etc/prebake/user-data, nocloud, configdrive; none on EC2), auto (local, or ec2 on EC2); ec2 without URL only on EC2 (DMI)")
	wait := fl.Duration("wait", 15*time.Second, "how long to wait for a seed volume or the metadata service to appear")
	root := fl.String("root", "/", "root of the node's file system (tests)")
	noStart := fl.Bool("no-start", false, "write the files and the stamp but do not start the join")
	devs := fl.String("devices", "", "comma-separated block devices (or image files) to look for a seed or config drive on (default: every device in /sys/class/block)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		logf("unexpected argument %q", fl.Arg(0))
		return 2
	}
	start := time.Now()
	logf("starting (version %s, datasource %s)", Version, *ds)
	if p, ok := agent.Joined(*root); ok {
		logf("already joined (%s exists): nothing to do", p)
		return 0
	}
	sources, err := parseSources(*ds, *wait, *root)
	if err != nil {
		logf("%v", err)
		return 2
	}
	if *devs != "" {
		list := strings.Split(*devs, ",")
		for _, s := range sources {
			switch v := s.(type) {
			case *datasource.Volume:
				v.Devices = func() []string { return list }
			case *datasource.Volumes:
				v.Devices = func() []string { return list }
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+5*time.Second)
	defer cancel()
	var (
		ud   []byte
		from string
	)
	for _, s := range sources {
		b, err := s.UserData(ctx)
		if errors.Is(err, datasource.ErrNotFound) {
			continue
		}
		if errors.Is(err, datasource.ErrNoUserData) {
			logf("%s: %v; no join by the agent", s.Name(), err)
			return 0
		}
		if err != nil {
			return refuse(*root, fmt.Sprintf("%s: %v", s.Name(), err))
		}
		ud, from = b, s.Name()
		break
	}
	if ud == nil {
		logf("no datasource found (%s); leaving the join to cloud-init", *ds)
		return 0
	}
	cfg, err := agent.Extract(ud)
	if errors.Is(err, agent.ErrNoPart) {
		logf("%s user-data (%d bytes): %v; leaving the join to cloud-init", from, len(ud), err)
		return 0
	}
	if err != nil {
		return refuse(*root, fmt.Sprintf("%s user-data: %v", from, err))
	}
	if err := agent.Apply(cfg, *root); errors.Is(err, agent.ErrJoined) {
		logf("%v: nothing to do", err)
		return 0
	} else if err != nil {
		return refuse(*root, fmt.Sprintf("%s user-data: %v", from, err))
	}
	logf("%s user-data: wrote %d files for node %s (%s join), claimed %s in %s",
		from, len(cfg.Files), cfg.Node, cfg.JoinMode, agent.StampPath, time.Since(start).Round(time.Millisecond))
	// The node's name must resolve before kubeadm's preflight looks it up;
	// a failure here is logged, not fatal (the join only waits longer).
	if err := agent.AddHost(*root, cfg.Node); err != nil {
		logf("%v", err)
	}
	if *noStart {
		return 0
	}
	if err := startJoin(cfg); err != nil {
		logf("starting the join: %v", err)
		return 1
	}
	return 0
}

// refuse logs why the user-data was refused, marks this boot so the
// cloud-init join unit stands down too, and fails the unit.
func refuse(root, msg string) int {
	logf("REFUSED, no join: %s", msg)
	if err := agent.Fail(root, msg); err != nil {
		logf("recording the refusal in %s: %v", agent.FailedPath, err)
	}
	return 1
}

func parseSources(spec string, wait time.Duration, root string) ([]datasource.Source, error) {
	var out []datasource.Source
	for _, s := range strings.Split(spec, ",") {
		switch name, arg, _ := strings.Cut(strings.TrimSpace(s), "="); name {
		case "auto", "local":
			onEC2 := datasource.OnEC2("/sys")
			out = append(out, datasource.File{Path: filepath.Join(root, "/etc/prebake/user-data")})
			switch {
			case onEC2 && name == "auto":
				out = append(out, &datasource.IMDS{})
			case onEC2:
				logf("on EC2: no local seed; prebake-agent-ec2.service reads IMDS once the network is up")
			default:
				// One scan for either volume, whichever appears.
				out = append(out, &datasource.Volumes{List: []*datasource.Volume{datasource.NoCloud(0), datasource.ConfigDrive(0)}, Wait: wait})
			}
		case "nocloud":
			out = append(out, datasource.NoCloud(wait))
		case "configdrive":
			out = append(out, datasource.ConfigDrive(wait))
		case "ec2":
			if arg == "" && !datasource.OnEC2("/sys") {
				logf("not on EC2 (DMI): skipping the ec2 datasource")
				continue
			}
			out = append(out, &datasource.IMDS{Endpoint: arg})
		case "file":
			if arg == "" {
				return nil, fmt.Errorf("-datasource file=PATH: PATH missing")
			}
			out = append(out, datasource.File{Path: arg})
		default:
			return nil, fmt.Errorf("-datasource %q: want auto or a list of nocloud, configdrive, ec2[=URL], file=PATH", s)
		}
	}
	return out, nil
}

// startJoin starts the join without waiting for it: the kubeadm mode's
// unit, or the kubelet itself (its configuration is in place).
func startJoin(cfg *agent.Config) error {
	for _, f := range cfg.Files {
		if strings.HasPrefix(f.Path, "/etc/systemd/") {
			if err := systemctl("daemon-reload"); err != nil {
				return err
			}
			break
		}
	}
	unit := "prebake-agent-join.service"
	verb := "start"
	if cfg.JoinMode == agent.ModeKubelet {
		unit, verb = "kubelet.service", "restart"
	}
	if err := systemctl(verb, "--no-block", unit); err != nil {
		return err
	}
	logf("join started: %s %s", verb, unit)
	return nil
}

func systemctl(args ...string) error {
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// check validates a user-data file the way the agent would read it.
func check(args []string) int {
	if len(args) != 1 {
		logf("usage: prebake-agent check USER-DATA")
		return 2
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		logf("%v", err)
		return 1
	}
	cfg, err := agent.Extract(b)
	if err != nil {
		logf("%s: %v", args[0], err)
		return 1
	}
	fmt.Printf("%s: node %s, %s join, %d files:\n", args[0], cfg.Node, cfg.JoinMode, len(cfg.Files))
	for _, f := range cfg.Files {
		fmt.Printf("  %s %s %s (%d bytes)\n", f.Mode, f.Owner, f.Path, len(f.Content))
	}
	return 0
}
