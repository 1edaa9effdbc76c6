using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace Nova.Workflow.Redis;

/// <summary>Settings of the Redis provider.</summary>
public sealed partial class RedisProviderOptions
{
    /// <summary>Prefix of every key and channel. Default <c>nova</c>. Letters, digits, '_', '-', '.', ':'.</summary>
    public string Prefix { get; set; } = "nova";

    /// <summary>The Redis database number. Default -1 (the connection's default).</summary>
    public int Database { get; set; } = -1;

    [GeneratedRegex("^[A-Za-z0-9_.:-]{1,64}$")]
    internal static partial Regex SafePrefix();
}

internal sealed class RedisProviderOptionsValidator : IValidateOptions<RedisProviderOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisProviderOptions options) =>
        RedisProviderOptions.SafePrefix().IsMatch(options.Prefix ?? string.Empty)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Redis Prefix '{options.Prefix}' must be 1–64 characters of letters, digits, '_', '-', '.' or ':'.");
}
