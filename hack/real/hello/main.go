// Command hello is the test pod of prebake's real-join test: it prints one
// line (kubectl logs shows it) and serves "hello from NODE" on :8080 until
// it is stopped. prebake builds it into a one-layer image
// (hack/real/images/hello).
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	node := os.Getenv("NODE_NAME")
	log.Printf("hello from a pod on %s", node)
	srv := &http.Server{Addr: ":8080", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", node)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
