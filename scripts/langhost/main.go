// pulumi-language-python: a small Python language host for the Pulumi CLI.
//
// Pulumi's own host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is refused by the
// Go module proxy reachable from our machines, so scripts/build-pulumi.sh builds this one against the same release's
// gRPC definitions. It implements what `pulumi preview/up/refresh/destroy/import` need: Run (spawns the SDK's own
// `pulumi-language-python-exec` shim with the project's interpreter), GetPluginInfo and GetRequiredPlugins.
// Everything else answers Unimplemented, which the engine treats as "not supported".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

var version = "v3.274.1"

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
}

func main() {
	var engine string
	// The engine passes flags first and its own address as the last positional argument.
	for _, a := range os.Args[1:] {
		if len(a) > 0 && a[0] != '-' {
			engine = a
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot locate myself:", err)
		os.Exit(1)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot listen:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(srv, &host{
		engineAddress: engine,
		execScript:    filepath.Join(filepath.Dir(self), "pulumi-language-python-exec"),
	})
	// The spawner reads our port from the first line of stdout.
	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "language host stopped:", err)
		os.Exit(1)
	}
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	// Dynamic providers need no downloadable plugin; the pulumi-python launcher sits beside the CLI.
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

// python picks the interpreter: the project's `virtualenv` runtime option, then PULUMI_PYTHON_CMD, then python3.
func python(info *pulumirpc.ProgramInfo) (string, string) {
	if info != nil && info.Options != nil {
		if v, ok := info.Options.AsMap()["virtualenv"].(string); ok && v != "" {
			if !filepath.IsAbs(v) {
				v = filepath.Join(info.RootDirectory, v)
			}
			return filepath.Join(v, "bin", "python"), v
		}
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, ""
	}
	return "python3", ""
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	interpreter, venv := python(req.GetInfo())
	program := req.GetProgram()
	if info := req.GetInfo(); info != nil && info.ProgramDirectory != "" {
		program = info.ProgramDirectory
		if info.EntryPoint != "" && info.EntryPoint != "." {
			program = filepath.Join(info.ProgramDirectory, info.EntryPoint)
		}
	}
	if program == "" {
		program = "."
	}
	args := []string{"-u", h.execScript}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	if info := req.GetInfo(); info != nil {
		add("root_directory", info.RootDirectory)
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, err
	}
	secretKeyList := req.GetConfigSecretKeys()
	if secretKeyList == nil {
		secretKeyList = []string{}
	}
	secretKeys, err := json.Marshal(secretKeyList)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, interpreter, args...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if venv != "" {
		cmd.Env = append(cmd.Env, "VIRTUAL_ENV="+venv, "PULUMI_RUNTIME_VIRTUALENV="+venv)
	}
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			// 32: the program already showed the user an actionable message.
			if exitErr.ExitCode() == 32 {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run %s: %v", interpreter, err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}
