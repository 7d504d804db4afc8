package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/stratalog/strata/config"
)

// Node is this process's part in the cluster: its etcd member (controller
// role), its etcd client, its registration (broker role), its view of the
// cluster, and, while elected, the controller.
type Node struct {
	cfg    config.Cluster
	log    *slog.Logger
	etcd   *embed.Etcd
	client *clientv3.Client
	view   *View
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sess is the current session: the lease of the registration and the
	// candidacy. A fenced node takes a new one with Rejoin.
	sess     atomic.Pointer[session]
	campaign bool // this node campaigns to be the controller
	// silent, in tests, stops the heartbeats while the lease stays alive.
	silent atomic.Bool
	// afterFirstCreateTxn, in tests, runs between the first and the other
	// transactions of a CreateTopic too large for one.
	afterFirstCreateTxn func()

	mu struct {
		sync.Mutex
		self   BrokerInfo
		closed bool
	}
	closeOnce sync.Once
	closeErr  error
}

// session is one lease of this node and what hangs on it.
type session struct {
	epoch   atomic.Int64     // the registration's create revision (the broker epoch); 0 until registered
	lease   clientv3.LeaseID // the registration's and the candidacy's lease
	candKey string           // this node's key under controller/ ("" if it does not campaign)
	fenced  chan struct{}    // closed when the lease is lost
	once    sync.Once
}

func (n *Node) cur() *session { return n.sess.Load() }

// Start joins the cluster: it starts the embedded etcd member when
// cfg.Controller (data in dataDir/etcd), connects a client, registers self
// when cfg.Broker, starts the view and campaigns to be the controller when
// cfg.Controller (with an external etcd, every broker campaigns).
func Start(ctx context.Context, cfg config.Cluster, dataDir string, self BrokerInfo, logger *slog.Logger) (*Node, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	self.ID = cfg.NodeID
	if self.Rack == "" {
		self.Rack = cfg.Rack
	}
	n := &Node{cfg: cfg, log: logger}
	n.sess.Store(&session{fenced: make(chan struct{})})
	n.mu.self = self
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	if cfg.Controller {
		if err := n.startEtcd(ctx, dataDir); err != nil {
			return nil, err
		}
	}
	endpoints := cfg.EtcdEndpoints
	if cfg.Controller {
		// A controller node talks to its own member only: etcd forwards to
		// the raft leader, and a member cut off from the quorum fails the
		// calls (this node is then fenced, as it should be). Dialing the
		// other voters instead, a client stuck on a paused member's
		// connection kept timing out while the rest of the cluster was fine.
		endpoints = []string{"http://" + net.JoinHostPort(cfg.ControllerHost, strconv.Itoa(cfg.ControllerPort+1))}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoints to dial")
	}
	// gRPC keepalives find a connection to a hung member (a paused
	// process, a cut network) within about two heartbeats, so the client
	// moves to another endpoint before the session expires.
	keepAlive := max(cfg.HeartbeatInterval, 100*time.Millisecond)
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    keepAlive,
		DialKeepAliveTimeout: keepAlive,
		Logger:               zap.NewNop(),
		Context:              n.ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	n.client = c

	campaign := cfg.Controller || (cfg.Broker && !cfg.Controller && isExternal(cfg))
	n.campaign = campaign
	if cfg.Broker || campaign {
		if err := n.grantLease(ctx, n.cur()); err != nil {
			return nil, err
		}
	}
	if cfg.Broker {
		if err := n.register(ctx); err != nil {
			return nil, err
		}
	}
	n.view = newView(c, logger)
	s, err := n.view.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot read the cluster's state: %w", err)
	}
	n.view.publish(s)
	n.wg.Go(func() { n.view.run(n.ctx, s.Rev) })
	if cfg.Broker || campaign {
		n.wg.Go(n.watchSelf)
	}
	if campaign {
		sess := n.cur()
		if err := n.runForController(ctx, sess); err != nil {
			return nil, err
		}
		n.wg.Go(func() { n.controlLoop(sess) })
	}
	ok = true
	return n, nil
}

// Rejoin is how a fenced node comes back (its lease expired: a pause, a
// partition from etcd): a new lease, a new registration (a new broker
// epoch: the controller has moved its leaderships and will treat it as a
// restarted broker) and, if it campaigns, a new candidacy. Fenced returns
// the new session's channel afterwards.
func (n *Node) Rejoin(ctx context.Context) error {
	old := n.cur()
	select {
	case <-old.fenced:
	default:
		return nil // not fenced
	}
	sess := &session{fenced: make(chan struct{})}
	if err := n.grantLease(ctx, sess); err != nil {
		return err
	}
	n.sess.Store(sess)
	if n.cfg.Broker {
		if err := n.register(ctx); err != nil {
			n.fence(sess)
			return err
		}
	}
	if n.campaign {
		if err := n.runForController(ctx, sess); err != nil {
			n.fence(sess)
			return err
		}
		n.wg.Go(func() { n.controlLoop(sess) })
	}
	n.log.Info("cluster: rejoined with a new registration", "epoch", n.Self().Epoch)
	return nil
}

// isExternal reports whether the endpoints name an external etcd (no voters
// and no bootstrap servers: etcd.endpoints).
func isExternal(cfg config.Cluster) bool { return len(cfg.Voters) == 0 && len(cfg.Bootstrap) == 0 }

// startEtcd starts this node's etcd member: peer URL at the CONTROLLER
// listener, client URL at its port + 1.
func (n *Node) startEtcd(ctx context.Context, dataDir string) error {
	e := embed.NewConfig()
	e.Name = memberName(n.cfg.NodeID)
	e.Dir = filepath.Join(dataDir, "etcd")
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort(n.cfg.ControllerHost, strconv.Itoa(n.cfg.ControllerPort))}
	client := url.URL{Scheme: "http", Host: net.JoinHostPort(n.cfg.ControllerHost, strconv.Itoa(n.cfg.ControllerPort+1))}
	e.ListenPeerUrls, e.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	e.ListenClientUrls, e.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	var initial []string
	for _, v := range n.cfg.Voters {
		initial = append(initial, memberName(v.ID)+"=http://"+net.JoinHostPort(v.Host, strconv.Itoa(v.Port)))
	}
	e.InitialCluster = strings.Join(initial, ",")
	e.InitialClusterToken = "strata"
	e.ClusterState = embed.ClusterStateFlagNew // ignored when the data dir already holds a member: it rejoins
	e.MaxTxnOps = 4096
	e.LogLevel = cmp.Or(n.cfg.EtcdLogLevel, "error") // etcd.log.level
	e.LogOutputs = []string{filepath.Join(dataDir, "etcd.log")}
	e.AutoCompactionMode, e.AutoCompactionRetention = "periodic", "1h"
	srv, err := embed.StartEtcd(e)
	if err != nil {
		return fmt.Errorf("cluster: cannot start the etcd member %s (peer %s, client %s, data %s): %w", e.Name, peer.Host, client.Host, e.Dir, err)
	}
	n.etcd = srv
	select {
	case <-srv.Server.ReadyNotify():
		return nil
	case err := <-srv.Err():
		return fmt.Errorf("cluster: the etcd member %s failed: %w", e.Name, err)
	case <-ctx.Done():
		return fmt.Errorf("cluster: the etcd member %s did not join its quorum (voters %s): %w", e.Name, e.InitialCluster, ctx.Err())
	}
}

func memberName(id int32) string { return "node-" + strconv.Itoa(int(id)) }

// grantLease takes the lease of the registration and candidacy and keeps it
// alive every HeartbeatInterval; Fenced closes when it is lost.
func (n *Node) grantLease(ctx context.Context, sess *session) error {
	ttl := int64((n.cfg.SessionTimeout + time.Second - 1) / time.Second)
	resp, err := n.client.Grant(ctx, max(ttl, 1))
	if err != nil {
		return fmt.Errorf("cluster: cannot take a lease: %w", err)
	}
	sess.lease = resp.ID
	if n.campaign {
		// Named now, before anything reads the session.
		sess.candKey = fmt.Sprintf("%s%x", candPrefix(n.cfg.NodeID), int64(sess.lease))
	}
	n.wg.Go(func() { n.keepAlive(sess) })
	return nil
}

func (n *Node) keepAlive(sess *session) {
	interval := max(n.cfg.HeartbeatInterval, 10*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(n.ctx, interval)
		resp, err := n.client.KeepAliveOnce(ctx, sess.lease)
		cancel()
		switch {
		case err == nil && resp.TTL > 0:
			last = time.Now()
			if (n.cfg.Broker || n.campaign) && !n.silent.Load() {
				// A write through raft, slower than the renewal under load:
				// given a third of the session, not one heartbeat.
				n.heartbeat(sess, max(interval, n.cfg.SessionTimeout/3))
			}
		case errors.Is(err, context.Canceled) && n.ctx.Err() != nil:
			return
		case err != nil && !strings.Contains(err.Error(), "lease not found") && time.Since(last) < n.cfg.SessionTimeout:
			n.log.Warn("cluster: cannot renew the broker's lease; retrying", "err", err)
		default:
			n.log.Error("cluster: the broker's registration lease is lost: fenced", "err", err)
			n.fence(sess)
			return
		}
	}
}

// heartbeat rewrites this broker's heartbeat key: the controller fences a
// broker whose key stops changing for broker.session.timeout.ms by its own
// clock. A lease alone is not enough: etcd restarts every lease's TTL when
// its raft leader changes, so a broker that died with the etcd leader kept
// its registration for the election plus a whole session timeout.
func (n *Node) heartbeat(sess *session, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(n.ctx, timeout)
	defer cancel()
	id := n.cfg.NodeID
	if _, err := n.client.Put(ctx, heartbeatKey(id), strconv.FormatInt(sess.epoch.Load(), 10), clientv3.WithLease(sess.lease)); err != nil && n.ctx.Err() == nil {
		n.log.Debug("cluster: heartbeat not written", "err", err)
	}
}

// watchSelf fences this broker when its registration disappears from the
// view or is another's (the controller removed it: its heartbeats stopped
// reaching etcd), while its lease may still be alive: the old lease is
// revoked, so the candidacy and heartbeat on it go too, and the broker
// rejoins.
func (n *Node) watchSelf() {
	seen := map[string]bool{} // candidacies the view has shown
	for {
		ch := n.view.Changed()
		sess := n.cur()
		s := n.view.Snapshot()
		lost := false
		if ep := sess.epoch.Load(); n.cfg.Broker && ep > 0 && s.Rev >= ep {
			if b, ok := s.Brokers[n.cfg.NodeID]; !ok || b.Epoch != ep {
				lost = true
			}
		}
		if k := sess.candKey; k != "" {
			if _, ok := s.cands[k]; ok {
				seen[k] = true
			} else if seen[k] {
				lost = true // a candidate deposed this node (its heartbeats stopped)
			}
		}
		n.mu.Lock()
		closing := n.mu.closed
		n.mu.Unlock()
		if lost && !closing {
			select {
			case <-sess.fenced:
			default:
				n.log.Error("cluster: this node's registration or candidacy was removed (its heartbeats stopped reaching etcd): fenced")
				ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
				_, _ = n.client.Revoke(ctx, sess.lease)
				cancel()
				n.fence(sess)
			}
		}
		select {
		case <-ch:
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) fence(sess *session) {
	sess.once.Do(func() { close(sess.fenced) })
}

// register writes self under the lease. A registration of the same id left
// by an earlier run at the same address is replaced (a restart: a new
// epoch); one of another address is waited out until ctx ends.
func (n *Node) register(ctx context.Context) error {
	self := n.Self()
	key := brokerKey(self.ID)
	val, _ := json.Marshal(BrokerInfo{Host: self.Host, Port: self.Port, Rack: self.Rack})
	for {
		resp, err := n.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(n.cur().lease))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return fmt.Errorf("cluster: cannot register broker %d: %w", self.ID, err)
		}
		if resp.Succeeded {
			n.cur().epoch.Store(resp.Header.Revision)
			n.mu.Lock()
			n.mu.self.Epoch = resp.Header.Revision
			n.mu.self.ShuttingDown = false
			n.mu.Unlock()
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 1 {
			var old BrokerInfo
			_ = json.Unmarshal(kvs[0].Value, &old)
			if old.Host == self.Host && old.Port == self.Port {
				_, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
					Then(clientv3.OpDelete(key)).Commit()
				if err != nil {
					return fmt.Errorf("cluster: cannot replace broker %d's old registration: %w", self.ID, err)
				}
				continue
			}
			n.log.Warn("cluster: node.id is registered by another address; waiting for its lease to expire", "node.id", self.ID, "other", net.JoinHostPort(old.Host, strconv.Itoa(int(old.Port))))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: node.id %d is registered by another broker: %w", self.ID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// campaign puts this node's candidacy under its lease; the oldest candidate
// is the controller, its key's create revision the controller epoch. It
// first deletes the candidacies of this node.id's earlier incarnations (a
// process killed and restarted), which live as long as their leases: left
// there, one of them could be the oldest candidate when the controller
// goes, and it would hold the role, with nobody to run it and nobody able
// to depose it (the node.id's heartbeats come from this incarnation), until
// its lease expired: a whole session after etcd's next raft election, which
// restarts every lease's TTL.
func (n *Node) runForController(ctx context.Context, sess *session) error {
	resp, err := n.client.Get(ctx, candPrefix(n.cfg.NodeID), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("cluster: cannot campaign to be the controller: %w", err)
	}
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); k != sess.candKey {
			tr, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", kv.CreateRevision)).
				Then(clientv3.OpDelete(k)).Commit()
			if err != nil {
				return fmt.Errorf("cluster: cannot remove an earlier incarnation's candidacy %s: %w", k, err)
			}
			if tr.Succeeded {
				n.log.Info("cluster: removed an earlier incarnation's candidacy", "key", k)
			}
		}
	}
	if _, err := n.client.Put(ctx, sess.candKey, strconv.Itoa(int(n.cfg.NodeID)), clientv3.WithLease(sess.lease)); err != nil {
		return fmt.Errorf("cluster: cannot campaign to be the controller: %w", err)
	}
	return nil
}

// candPrefix is the prefix of node id's candidacies, controller/<id>-<lease>.
func candPrefix(id int32) string { return fmt.Sprintf("%s%d-", controllerPrefix, id) }

// View is the node's view of the cluster.
func (n *Node) View() *View { return n.view }

// Client is the node's etcd client.
func (n *Node) Client() *clientv3.Client { return n.client }

// Self is this broker's registration, with its Epoch.
func (n *Node) Self() BrokerInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.self
}

// Fenced is closed when the registration lease is lost: the broker must stop
// acting as a leader.
func (n *Node) Fenced() <-chan struct{} { return n.cur().fenced }

// ControlledShutdown marks this broker ShuttingDown and waits until the view
// shows it leads no partition and is in no ISR (but as the last member of an
// ISR with no other live replica, as KRaft keeps it), or ctx ends.
func (n *Node) ControlledShutdown(ctx context.Context) error {
	self := n.Self()
	key := brokerKey(self.ID)
	val, _ := json.Marshal(BrokerInfo{Host: self.Host, Port: self.Port, Rack: self.Rack, ShuttingDown: true})
	resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", self.Epoch)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(n.cur().lease))).Commit()
	if err != nil {
		return fmt.Errorf("cluster: controlled shutdown: %w", err)
	}
	if !resp.Succeeded {
		return ErrFenced
	}
	n.mu.Lock()
	n.mu.self.ShuttingDown = true
	n.mu.Unlock()
	if err := n.view.WaitRev(ctx, resp.Header.Revision); err != nil {
		return err
	}
	for {
		ch := n.view.Changed()
		if released(n.view.Snapshot(), self.ID) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cluster: controlled shutdown of broker %d: leaderships not moved: %w", self.ID, ctx.Err())
		}
	}
}

// released reports whether id leads nothing and is in no ISR but as its last
// member.
func released(s *Snapshot, id int32) bool {
	for _, p := range s.Partitions {
		if p.Leader == id {
			return false
		}
		if has(p.ISR, id) && len(p.ISR) > 1 {
			return false
		}
	}
	return true
}

// Close resigns, revokes the lease (the registration goes at once), and
// closes the client and the etcd member. It may be called more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.mu.closed = true
		n.mu.Unlock()
		if sess := n.cur(); n.client != nil && sess.lease != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if sess.candKey != "" {
				_, _ = n.client.Delete(ctx, sess.candKey)
			}
			_, _ = n.client.Revoke(ctx, sess.lease)
			cancel()
		}
		n.cancel()
		n.wg.Wait()
		if n.client != nil {
			n.closeErr = n.client.Close()
			if errors.Is(n.closeErr, context.Canceled) {
				n.closeErr = nil
			}
		}
		if n.etcd != nil {
			n.etcd.Close()
		}
	})
	return n.closeErr
}
