// Command checkpoint-grpc-gateway is the bench's reference REST front: grpc-gateway's generated
// handlers for checkpoint.v1.CheckpointService (from protos/, by scripts/ensure_gateway.sh) in
// front of a plaintext checkpoint-server, with grpc-gateway's defaults (JSON names as in the
// .proto, Authorization forwarded as gRPC metadata). It is what issue 12's ratios divide by.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // the server's status details (ErrorInfo), so error answers render
	"google.golang.org/grpc"

	pb "checkpointgw/checkpointpb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to serve REST on (port 0 picks one)")
	upstream := flag.String("upstream", "", "checkpoint-server's gRPC HOST:PORT (plaintext)")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "checkpoint-grpc-gateway: -upstream HOST:PORT is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mux := runtime.NewServeMux()
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if err := pb.RegisterCheckpointServiceHandlerFromEndpoint(ctx, mux, *upstream, opts); err != nil {
		log.Fatalf("checkpoint-grpc-gateway: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("checkpoint-grpc-gateway: cannot listen on %s: %v", *listen, err)
	}
	server := &http.Server{Handler: mux}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		drain, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = server.Shutdown(drain)
	}()
	fmt.Printf("checkpoint-grpc-gateway: serving REST on %s, upstream %s\n", ln.Addr(), *upstream)
	if err := server.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("checkpoint-grpc-gateway: %v", err)
	}
}
