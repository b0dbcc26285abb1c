// Command build writes Tower's test images as OCI archives into the
// directory given as its argument (`make images` uses bin/images).
package main

import (
	"context"
	"fmt"
	"os"

	"tower.dev/tower/test/images/imagebuild"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: build OUTPUT-DIR")
		os.Exit(2)
	}
	archives, err := imagebuild.Build(context.Background(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, a := range archives {
		fmt.Printf("%s\t%s\n", a.Image, a.Path)
	}
}
