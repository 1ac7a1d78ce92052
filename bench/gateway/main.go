// Command checkpoint-grpc-gateway is the bench's reference REST front: grpc-gateway's generated
// handlers for checkpoint.v1.CheckpointService (from protos/, by scripts/ensure_gateway.sh) in
// front of a plaintext checkpoint-server, with grpc-gateway's defaults (JSON names as in the
// .proto, Authorization forwarded as gRPC metadata). It is what issue 12's ratios divide by.
//
// -connections N opens N client connections and spreads calls over them in turn: one
// connection (grpc-gateway's default) reaches only one of the server's --workers, since the
// kernel hands each connection to one SO_REUSEPORT listener.
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // the server's status details (ErrorInfo), so error answers render
	"google.golang.org/grpc"

	pb "checkpointgw/checkpointpb"
)

// roundRobin is a grpc.ClientConnInterface over several connections, one call each in turn.
type roundRobin struct {
	conns []*grpc.ClientConn
	next  uint32
}

func (r *roundRobin) pick() *grpc.ClientConn {
	return r.conns[int(atomic.AddUint32(&r.next, 1))%len(r.conns)]
}

func (r *roundRobin) Invoke(ctx context.Context, method string, args, reply interface{}, opts ...grpc.CallOption) error {
	return r.pick().Invoke(ctx, method, args, reply, opts...)
}

func (r *roundRobin) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return r.pick().NewStream(ctx, desc, method, opts...)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to serve REST on (port 0 picks one)")
	upstream := flag.String("upstream", "", "checkpoint-server's gRPC HOST:PORT (plaintext)")
	connections := flag.Int("connections", 1, "client connections to the upstream, used in turn")
	flag.Parse()
	if *upstream == "" || *connections < 1 {
		fmt.Fprintln(os.Stderr, "checkpoint-grpc-gateway: -upstream HOST:PORT and -connections >= 1 are required")
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := &roundRobin{}
	for i := 0; i < *connections; i++ {
		conn, err := grpc.DialContext(ctx, *upstream, grpc.WithInsecure())
		if err != nil {
			log.Fatalf("checkpoint-grpc-gateway: %v", err)
		}
		defer conn.Close()
		pool.conns = append(pool.conns, conn)
	}
	mux := runtime.NewServeMux()
	if err := pb.RegisterCheckpointServiceHandlerClient(ctx, mux, pb.NewCheckpointServiceClient(pool)); err != nil {
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
	fmt.Printf("checkpoint-grpc-gateway: serving REST on %s, upstream %s (%d connections)\n", ln.Addr(), *upstream, *connections)
	if err := server.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("checkpoint-grpc-gateway: %v", err)
	}
}
