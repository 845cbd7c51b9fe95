// Command podnet is the svclab test bed's pod network: a small agent, one per node, that
//
//   - writes the node's CNI configuration (ptp + host-local on the node's pod CIDR + portmap),
//   - routes every other node's pod CIDR through that node's address on the shared docker network,
//   - masquerades pod traffic that leaves the cluster's pod network.
//
// All kind nodes sit on one docker bridge, so plain routes are enough: no overlay, no encapsulation.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const cniFile = "10-svclab-podnet.conflist"

type agent struct {
	nodeName  string
	podSubnet string
	cniDir    string
	nodes     interface {
		List(labels.Selector) ([]*corev1.Node, error)
	}
	masqueradeDone bool
}

func main() {
	a := &agent{nodeName: os.Getenv("NODE_NAME"), podSubnet: os.Getenv("POD_SUBNET"), cniDir: os.Getenv("CNI_CONF_DIR")}
	if a.nodeName == "" || a.podSubnet == "" || a.cniDir == "" {
		log.Fatal("NODE_NAME, POD_SUBNET and CNI_CONF_DIR must be set")
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	factory := informers.NewSharedInformerFactory(client, 5*time.Minute)
	informer := factory.Core().V1().Nodes()
	a.nodes = informer.Lister()

	changed := make(chan struct{}, 1)
	poke := func(interface{}) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, n interface{}) { poke(n) }, DeleteFunc: poke,
	})
	ctx := context.Background()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for range changed {
		if err := a.sync(); err != nil {
			log.Printf("sync: %v", err)
		}
	}
}

func (a *agent) sync() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding: %w", err)
	}
	nodes, err := a.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, node := range nodes {
		if node.Spec.PodCIDR == "" {
			continue
		}
		if node.Name == a.nodeName {
			if err := a.writeCNIConfig(node.Spec.PodCIDR); err != nil {
				return err
			}
			if err := a.masquerade(node.Spec.PodCIDR); err != nil {
				return err
			}
			continue
		}
		if err := routeTo(node); err != nil {
			log.Printf("route to %s: %v", node.Name, err)
		}
	}
	return nil
}

func (a *agent) writeCNIConfig(podCIDR string) error {
	conf := map[string]interface{}{
		"cniVersion": "1.0.0",
		"name":       "svclab-podnet",
		"plugins": []interface{}{
			map[string]interface{}{
				"type":   "ptp",
				"ipMasq": false,
				"mtu":    1500,
				"ipam": map[string]interface{}{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]interface{}{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(a.cniDir, cniFile)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	log.Printf("CNI configuration for %s written", podCIDR)
	return os.Rename(tmp, path)
}

func routeTo(node *corev1.Node) error {
	var gateway net.IP
	for _, addr := range node.Status.Addresses {
		if addr.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(addr.Address); ip != nil && ip.To4() != nil {
				gateway = ip
			}
		}
	}
	if gateway == nil {
		return fmt.Errorf("no IPv4 InternalIP yet")
	}
	_, dst, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gateway})
}

// masquerade adds, once, the rule that hides pod addresses behind the node's own address when a
// pod talks to anything outside the cluster's pod network.
func (a *agent) masquerade(podCIDR string) error {
	if a.masqueradeDone {
		return nil
	}
	rule := []string{"POSTROUTING", "-s", podCIDR, "!", "-d", a.podSubnet,
		"-m", "comment", "--comment", "svclab-podnet: leaving the pod network", "-j", "MASQUERADE"}
	if exec.Command("iptables", append([]string{"-t", "nat", "-C"}, rule...)...).Run() != nil {
		out, err := exec.Command("iptables", append([]string{"-t", "nat", "-A"}, rule...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables: %v: %s", err, out)
		}
	}
	a.masqueradeDone = true
	return nil
}
