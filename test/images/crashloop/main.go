// Command crashloop is the tower.dev/test/crashloop image: it prints a line,
// waits a second and exits 1, so a pod running it goes into
// CrashLoopBackOff.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	fmt.Println("crashloop: starting, exiting with 1 in a second")
	time.Sleep(time.Second)
	os.Exit(1)
}
