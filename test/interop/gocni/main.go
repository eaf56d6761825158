// Command gocni drives CNI plugins through containerd's go-cni, exactly as containerd's CRI plugin
// does for every pod sandbox: gocni.New with the CRI plugin's options, Load with go-cni's own
// loopback network and the default (first) network of the conf dir, then Setup / Check / Remove
// with the port mappings, bandwidth and labels as namespace options, or Status.
//
// Input: one JSON object on stdin (or as the only argument):
//
//	{"op": "setup"|"check"|"remove"|"status", "confDir": DIR, "binDir": DIR, "id": ID,
//	 "netns": PATH, "portMappings": [{"HostPort": 8080, ...}], "bandwidth": {"IngressRate": ...},
//	 "labels": {"K8S_POD_NAME": ...}, "timeoutSeconds": 60, "noLoopback": false}
//
// Output: one JSON object on stdout, {"ok": true, "result": ...} (setup: go-cni's interfaces map
// and the raw results of every network) or {"ok": false, "error": "..."} with exit status 1.
//
// go-cni has no cache dir option and libcni reads no environment for it: results are cached
// under /var/lib/cni/results. The caller runs this program in a mount namespace of its own where
// /var/lib is a scratch directory (unshare -m + a bind mount), never the machine's.
//
// Built in GOPATH mode against Debian's golang-github-containerd-go-cni-dev:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o gocni main.go
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	gocni "github.com/containerd/go-cni"
)

type input struct {
	Op             string              `json:"op"`
	ConfDir        string              `json:"confDir"`
	BinDir         string              `json:"binDir"`
	ID             string              `json:"id"`
	NetNS          string              `json:"netns"`
	PortMappings   []gocni.PortMapping `json:"portMappings"`
	Bandwidth      *gocni.BandWidth    `json:"bandwidth"`
	Labels         map[string]string   `json:"labels"`
	TimeoutSeconds int                 `json:"timeoutSeconds"`
	// NoLoopback leaves out go-cni's own loopback network (WithLoNetwork) and asks for one network
	// only: libcni refuses CHECK on configuration lists below 0.4.0, and go-cni's loopback list is
	// 0.3.1, so a Check with it never reaches the pod network.
	NoLoopback bool `json:"noLoopback"`
}

type setupOutput struct {
	Interfaces map[string]*gocni.Config `json:"interfaces"`
	Raw        interface{}              `json:"raw"`
}

func fail(err error) {
	out, _ := json.Marshal(map[string]interface{}{"ok": false, "error": err.Error()})
	fmt.Println(string(out))
	os.Exit(1)
}

func main() {
	var raw []byte
	var err error
	if len(os.Args) > 1 {
		raw = []byte(os.Args[1])
	} else if raw, err = io.ReadAll(os.Stdin); err != nil {
		fail(err)
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		fail(fmt.Errorf("bad input: %w", err))
	}
	if in.TimeoutSeconds <= 0 {
		in.TimeoutSeconds = 60
	}

	// containerd's CRI plugin: two networks at least (loopback + the pod network), the conf dir,
	// the bin dirs, and "eth" as the interface prefix
	minNetworks, load := 2, []gocni.Opt{gocni.WithLoNetwork, gocni.WithDefaultConf}
	if in.NoLoopback {
		minNetworks, load = 1, []gocni.Opt{gocni.WithDefaultConf}
	}
	cni, err := gocni.New(
		gocni.WithMinNetworkCount(minNetworks),
		gocni.WithPluginConfDir(in.ConfDir),
		gocni.WithPluginDir([]string{in.BinDir}),
		gocni.WithInterfacePrefix("eth"),
	)
	if err != nil {
		fail(fmt.Errorf("gocni.New: %w", err))
	}
	if err := cni.Load(load...); err != nil {
		fail(fmt.Errorf("load: %w", err))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(in.TimeoutSeconds)*time.Second)
	defer cancel()
	// the namespace options containerd passes (cniNamespaceOpts): labels, then capabilities
	opts := []gocni.NamespaceOpts{gocni.WithLabels(in.Labels)}
	if in.PortMappings != nil {
		opts = append(opts, gocni.WithCapabilityPortMap(in.PortMappings))
	}
	if in.Bandwidth != nil {
		opts = append(opts, gocni.WithCapabilityBandWidth(*in.Bandwidth))
	}

	var result interface{}
	switch in.Op {
	case "setup":
		r, err := cni.Setup(ctx, in.ID, in.NetNS, opts...)
		if err != nil {
			fail(fmt.Errorf("setup: %w", err))
		}
		result = setupOutput{Interfaces: r.Interfaces, Raw: r.Raw()}
	case "check":
		if err := cni.Check(ctx, in.ID, in.NetNS, opts...); err != nil {
			fail(fmt.Errorf("check: %w", err))
		}
	case "remove":
		if err := cni.Remove(ctx, in.ID, in.NetNS, opts...); err != nil {
			fail(fmt.Errorf("remove: %w", err))
		}
	case "status":
		if err := cni.Status(); err != nil {
			fail(fmt.Errorf("status: %w", err))
		}
	default:
		fail(fmt.Errorf("unknown op %q (setup, check, remove, status)", in.Op))
	}
	out, err := json.Marshal(map[string]interface{}{"ok": true, "result": result})
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}
