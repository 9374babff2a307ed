# frozen_string_literal: true

# Runs a Homebrew formula's install and test blocks without Homebrew, which cannot be installed
# on the machines the tests run on. This is the part of Homebrew's Formula DSL that
# packaging/homebrew/mlsdiag.rb.in uses, with Homebrew's semantics where they matter:
# std_cargo_args is the flags brew passes (--jobs, --locked, --root=PREFIX, --path=.), `system`
# and `shell_output` fail on the exit status as brew's do, completions land where brew puts
# them, and the version comes from the url. A formula that uses anything else fails here with
# a NoMethodError naming it, rather than being skipped.
#
#   ruby harness.rb FORMULA TARBALL WORKDIR
#
# It checks the metadata (desc, homepage, license, `depends_on "rust" => :build`, the url is
# the tarball and its sha256 matches), unpacks the tarball in WORKDIR/build, runs `install`
# with the prefix WORKDIR/prefix, checks what was installed, and runs `test do` in
# WORKDIR/test.

require "digest"
require "fileutils"
require "open3"
require "pathname"

# Homebrew's Pathname#install: move or copy files into a directory, creating it.
class Pathname
  def install(*sources)
    mkpath
    sources.flatten.each do |s|
      if s.is_a?(Hash)
        s.each { |from, to| FileUtils.cp(from.to_s, (self / to).to_s) }
      else
        FileUtils.cp(s.to_s, (self / File.basename(s.to_s)).to_s)
      end
    end
  end

  def write(text)
    dirname.mkpath
    File.write(to_s, text)
  end
end

class Formula
  class << self
    attr_reader :spec

    def inherited(sub)
      super
      sub.instance_variable_set(:@spec, { deps: [] })
      @last = sub
    end

    attr_reader :last

    %i[desc homepage sha256].each do |field|
      define_method(field) { |value| @spec[field] = value }
    end

    def url(value, **options)
      @spec[:url] = value
      @spec[:url_options] = options
    end

    def license(value)
      @spec[:license] = value
    end

    def head(value, **options)
      @spec[:head] = [value, options]
    end

    def depends_on(dep)
      @spec[:deps] << dep
    end

    def test(&block)
      @spec[:test] = block
    end
  end

  def initialize(prefix, testpath)
    @prefix = Pathname(prefix)
    @testpath = Pathname(testpath)
  end

  attr_reader :prefix, :testpath

  def name
    "mlsdiag"
  end
  def bin
    prefix / "bin"
  end
  def man1
    prefix / "share/man/man1"
  end
  def bash_completion
    prefix / "etc/bash_completion.d"
  end
  def zsh_completion
    prefix / "share/zsh/site-functions"
  end
  def fish_completion
    prefix / "share/fish/vendor_completions.d"
  end

  # Homebrew takes the version from the url's file name.
  def version
    self.class.spec[:url][/(\d+(?:\.\d+)+)(?:\.tar\.gz|\.tgz|\.zip)\z/, 1] or
      raise "cannot read a version from the url #{self.class.spec[:url]}"
  end

  def std_cargo_args(root: prefix, path: ".")
    ["--jobs", ENV.fetch("HOMEBREW_MAKE_JOBS", "2"), "--locked", "--root=#{root}", "--path=#{path}"]
  end

  def system(cmd, *args)
    puts "==> #{([cmd] + args).join(" ")}"
    Kernel.system(cmd.to_s, *args.map(&:to_s)) or raise "failed: #{cmd} #{args.join(" ")} (#{$?})"
  end

  # Homebrew's default: `EXE ARGS SHELL` for each shell, written where brew's shells look.
  def generate_completions_from_executable(*cmd, shells: %i[bash zsh fish], base_name: name)
    places = { bash: bash_completion / base_name, zsh: zsh_completion / "_#{base_name}",
               fish: fish_completion / "#{base_name}.fish" }
    shells.each do |shell|
      out, status = Open3.capture2(*cmd.map(&:to_s), shell.to_s)
      raise "#{cmd.join(" ")} #{shell} failed (#{status})" unless status.success?

      places.fetch(shell).write(out)
    end
  end

  def shell_output(cmd, result = 0)
    puts "==> #{cmd}"
    out, status = Open3.capture2e(cmd)
    raise "#{cmd}: exit #{status.exitstatus}, expected #{result}:\n#{out}" if status.exitstatus != result

    out
  end

  def assert_match(pattern, text)
    ok = pattern.is_a?(Regexp) ? pattern.match?(text) : text.include?(pattern)
    raise "assert_match: #{pattern.inspect} not in:\n#{text}" unless ok
  end
end

def check(cond, what)
  raise "formula: #{what}" unless cond
end

formula_path, tarball, work = ARGV
abort "usage: harness.rb FORMULA TARBALL WORKDIR" unless work
load formula_path
klass = Formula.last
check(klass, "#{formula_path} defines no Formula subclass")
spec = klass.spec
%i[desc homepage url sha256 license].each { |f| check(spec[f], "#{f} is missing") }
check(spec[:desc].length <= 80 && spec[:desc] !~ /\A(a|an|the)\b/i && spec[:desc] !~ /mlsdiag/i,
      "desc breaks homebrew-core's rules: #{spec[:desc].inspect}")
check(spec[:deps].include?({ "rust" => :build }), 'no depends_on "rust" => :build')
check(spec[:url] == "file://#{File.expand_path(tarball)}", "url #{spec[:url]} is not #{tarball}")
check(spec[:sha256] == Digest::SHA256.file(tarball).hexdigest, "sha256 does not match #{tarball}")
check(spec[:test], "no test do block")

work = Pathname(work)
build = work / "build"
build.mkpath
Kernel.system("tar", "-xzf", tarball, "-C", build.to_s) or raise "cannot unpack #{tarball}"
top = build.children.select(&:directory?)
check(top.size == 1, "the tarball must hold one top directory, it holds #{top.map(&:basename)}")
f = klass.new(work / "prefix", work / "test")
Dir.chdir(top.first) { f.install }
[f.bin / "mlsdiag", f.man1 / "mlsdiag.1", f.bash_completion / "mlsdiag",
 f.zsh_completion / "_mlsdiag", f.fish_completion / "mlsdiag.fish"].each do |p|
  check(p.file? && p.size.positive?, "install did not write #{p}")
end
f.testpath.mkpath
Dir.chdir(f.testpath) { f.instance_eval(&spec[:test]) }
puts "harness: #{formula_path}: install and test passed"
