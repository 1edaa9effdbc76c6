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
