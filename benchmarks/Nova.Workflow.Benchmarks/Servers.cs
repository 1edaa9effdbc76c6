using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Nova.Workflow.Benchmarks;

/// <summary>A redis-server on 127.0.0.1 at a free port in a temp dir, owned by the runner.</summary>
internal sealed class LocalRedis : IDisposable
{
    private readonly Process _process;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nova-bench-redis-" + Guid.NewGuid().ToString("N")[..6]);

    public LocalRedis()
    {
        Directory.CreateDirectory(_dir);
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _dir })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server is not installed (apt-get install -y redis-server).");
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port},allowAdmin=true";

    public void Dispose()
    {
        _process.Kill();
        _process.WaitForExit();
        _process.Dispose();
        Directory.Delete(_dir, true);
    }
}

/// <summary>A PostgreSQL from the installed binaries, run as the postgres user in a temp dir (fsync on).</summary>
internal sealed class LocalPostgres : IDisposable
{
    private readonly Process _process;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nova-bench-pg-" + Guid.NewGuid().ToString("N")[..6]);

    public LocalPostgres()
    {
        var bin = Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).First(d => File.Exists(Path.Combine(d, "initdb")));
        Directory.CreateDirectory(_dir);
        Run("chown", "postgres", _dir);
        var data = Path.Combine(_dir, "data");
        Run("runuser", "-u", "postgres", "--", Path.Combine(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8");
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var info = new ProcessStartInfo("runuser") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-u", "postgres", "--", Path.Combine(bin, "postgres"), "-D", data, "-p", Port.ToString(CultureInfo.InvariantCulture), "-c", "listen_addresses=127.0.0.1", "-c", $"unix_socket_directories={_dir}", "-c", "max_connections=300" })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Maximum Pool Size=100";

    public void Dispose()
    {
        _process.Kill(true);
        _process.WaitForExit();
        _process.Dispose();
        Directory.Delete(_dir, true);
    }

    private static void Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
    }
}
