using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// A real PostgreSQL 15 from the installed binaries: initdb and postgres run as the non-root
/// <c>postgres</c> user in a temp dir, on 127.0.0.1 at a free port; removed after the tests.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nova-pg-" + Guid.NewGuid().ToString("N")[..8]);
    private Process? _process;

    public int Port { get; private set; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Maximum Pool Size=60;Timeout=15";

    public NpgsqlDataSource DataSource { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var bin = Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin")).First(d => File.Exists(Path.Combine(d, "initdb")));
        Directory.CreateDirectory(_dir);
        await RunAsync("chown", "postgres", _dir);
        var data = Path.Combine(_dir, "data");
        await RunAsync("runuser", "-u", "postgres", "--", Path.Combine(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
        Port = FreePort();
        var info = new ProcessStartInfo("runuser") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-u", "postgres", "--", Path.Combine(bin, "postgres"), "-D", data, "-p", Port.ToString(CultureInfo.InvariantCulture), "-c", "listen_addresses=127.0.0.1", "-c", $"unix_socket_directories={_dir}", "-c", "max_connections=300", "-c", "shared_buffers=128MB" })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        DataSource = NpgsqlDataSource.Create(ConnectionString);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await using var command = DataSource.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync();
                break;
            }
            catch (Exception ex) when ((ex is NpgsqlException or SocketException) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    public async Task DisposeAsync()
    {
        await DataSource.DisposeAsync();
        if (_process is not null)
        {
            // runuser forwards SIGTERM; postgres then shuts down (smart mode) and exits.
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            _process.Dispose();
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

    private static async Task RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {output}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
