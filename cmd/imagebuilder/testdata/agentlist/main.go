// Command agentlist prints the comments of the keys the ssh agent at SSH_AUTH_SOCK holds. The
// ssh forwarding test runs it inside a build (busybox has no ssh client) to prove the agent
// answers there.
package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh/agent"
)

func main() {
	c, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentlist:", err)
		os.Exit(1)
	}
	defer c.Close()
	keys, err := agent.NewClient(c).List()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentlist:", err)
		os.Exit(1)
	}
	for _, k := range keys {
		fmt.Println(k.Comment)
	}
}
