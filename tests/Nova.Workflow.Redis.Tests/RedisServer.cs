using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>A real redis-server on 127.0.0.1 at a free port in a temp dir, started for the tests and removed after.</summary>
public sealed class RedisServer : IAsyncLifetime
{
    private readonly List<Process> _processes = [];
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nova-redis-" + Guid.NewGuid().ToString("N")[..8]);

    public int Port { get; private set; }

    public IConnectionMultiplexer Connection { get; private set; } = null!;

    public string ConnectionString => $"127.0.0.1:{Port},allowAdmin=true";

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        Port = FreePort();
        _processes.Add(StartServer(_dir, Port));
        Connection = await ConnectAsync(ConnectionString);
    }

    public async Task DisposeAsync()
    {
        if (Connection is not null)
        {
            await Connection.CloseAsync();
            Connection.Dispose();
        }

        foreach (var process in _processes)
        {
            Stop(process);
        }

        try
        {
            Directory.Delete(_dir, true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    internal static Process StartServer(string dir, int port, params string[] extra)
    {
        var info = new ProcessStartInfo("redis-server")
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--maxmemory-policy", "noeviction" }.Concat(extra))
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start; install it with: apt-get install -y redis-server");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    internal static async Task<IConnectionMultiplexer> ConnectAsync(string configuration)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                var connection = await ConnectionMultiplexer.ConnectAsync(configuration + ",abortConnect=true,connectTimeout=2000");
                await connection.GetDatabase().PingAsync();
                return connection;
            }
            catch (RedisConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    internal static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        process.Dispose();
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
